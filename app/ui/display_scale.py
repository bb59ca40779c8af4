"""Small images shown larger in the box editors (Label and Review): the page gets a copy scaled up by a whole
factor, boxes go to the page multiplied by it and come back divided by it. The factor follows from the image's
stored size alone, so a save needs nothing from the page to undo it. Box coordinates in the database stay in the
image's own pixels."""
from __future__ import annotations

import math
from pathlib import Path

SHOWN_PX = 480  # the example's ~140 px images become 560 px: labels and handles fit


def factor(width: int, height: int) -> int:
    longest = max(int(width), int(height), 1)
    return max(1, math.ceil(SHOWN_PX / longest)) if longest < SHOWN_PX else 1


def to_page(boxes: list[dict], k: int) -> list[dict]:
    return [{**box, **{key: box[key] * k for key in ("xmin", "ymin", "xmax", "ymax") if key in box}}
            for box in boxes]


def from_page(boxes: list, k: int) -> list:
    """The page's boxes in image pixels; anything that is not a box with numbers is passed on for the store to
    refuse with its own message."""
    if k == 1:
        return boxes
    back = []
    for box in boxes:
        if isinstance(box, dict):
            box = {**box, **{key: box[key] / k for key in ("xmin", "ymin", "xmax", "ymax")
                             if isinstance(box.get(key), (int, float)) and not isinstance(box.get(key), bool)}}
        back.append(box)
    return back


def page_image(ctx, path: Path, k: int) -> str:
    """The copy the page shows: the stored file itself when it is large enough, else scaled by k (nearest pixel,
    so the pixels a box covers stay exact)."""
    if k == 1:
        return ctx.served(path)
    from PIL import Image

    from sdpt.data import load_image

    image = load_image(path)
    return ctx.served_image(image.resize((image.width * k, image.height * k), Image.Resampling.NEAREST),
                            f"{Path(path).stem}-x{k}")
