"""A seeded generator of simple box-labelled images (coloured shapes on noisy backgrounds) written as COCO JSON."""
from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
SHAPES = ("square", "circle", "triangle")


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], colour) -> None:
    x0, y0, x1, y1 = box
    if shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "circle":
        draw.ellipse(box, fill=colour)
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=colour)


def make_shapes_dataset(directory: str | Path, num_images: int = 6, classes: list[str] | None = None,
                        seed: int = 0, size_range: tuple[int, int] = (96, 160), objects: tuple[int, int] = (1, 3),
                        ) -> Path:
    """Write `num_images` JPEG images and `annotations.json` into `directory`; return the annotation path.

    Each class is "<colour> <shape>"; objects do not overlap; image sizes (and aspect ratios) vary.
    """
    rng = random.Random(seed)
    directory = Path(directory)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    classes = classes or ["red square", "blue circle"]
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(classes)]
    images, annotations = [], []
    for index in range(num_images):
        width, height = rng.randint(*size_range), rng.randint(*size_range)
        background = tuple(rng.randint(90, 170) for _ in range(3))
        image = Image.new("RGB", (width, height), background)
        draw = ImageDraw.Draw(image)
        for _ in range(40):  # speckle noise so the background is not flat
            x, y = rng.randrange(width), rng.randrange(height)
            draw.point((x, y), fill=tuple(rng.randint(60, 200) for _ in range(3)))
        placed: list[tuple[int, int, int, int]] = []
        for _ in range(rng.randint(*objects)):
            category = rng.randrange(len(classes))
            colour_name, shape = (classes[category].split(" ", 1) + ["square"])[:2]
            side = rng.randint(min(width, height) // 5, min(width, height) // 2)
            for _attempt in range(20):
                x0, y0 = rng.randint(0, width - side), rng.randint(0, height - side)
                box = (x0, y0, x0 + side, y0 + side)
                if all(box[2] <= b[0] or box[0] >= b[2] or box[3] <= b[1] or box[1] >= b[3] for b in placed):
                    break
            else:
                continue
            placed.append(box)
            draw_shape(draw, shape if shape in SHAPES else "square", box, COLOURS.get(colour_name, (200, 200, 200)))
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": category + 1,
                                "bbox": [box[0], box[1], side, side], "area": side * side, "iscrowd": 0})
        file_name = f"img_{index:03d}.jpg"
        image.save(directory / "images" / file_name, quality=92)
        images.append({"id": index + 1, "file_name": file_name, "width": width, "height": height})
    path = directory / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}, indent=1))
    return path
