"""Synthetic grounding data: scenes of coloured shapes described by phrases, and the concept splits.

Pre-training sees 8 colours x 6 shapes ("red star", ...) with solid or dotted fills on flat, gradient or speckled
backgrounds. Held out for the transfer tasks:
- `appearance`: known phrases drawn striped or in outline on dark noise (new look, known words);
- `new_word`: new shapes named by words pre-training never saw ("hexagon", "heart", "crescent");
- `many`: 30 classes mixing known shapes with colours pre-training never saw ("purple", "cyan").
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from PIL import Image

from sdpt.synthetic.drawing import COLOURS, background, clutter, paste_shape

PRETRAIN_COLOURS = ("red", "green", "blue", "yellow", "orange", "pink", "white", "black")
PRETRAIN_SHAPES = ("square", "circle", "triangle", "star", "cross", "ring")


@dataclass(frozen=True)
class SceneStyle:
    """What a set of scenes shows: its classes (phrase -> (colour or None, shape)), looks and layout."""

    classes: dict[str, tuple[str | None, str]]
    fills: tuple[str, ...] = ("solid", "dotted")
    backgrounds: tuple[str, ...] = ("flat", "gradient", "speckle")
    distractor_shapes: tuple[str, ...] = ()  # drawn but never labelled
    objects: tuple[int, int] = (1, 5)
    image_size: tuple[int, int] = (128, 176)
    object_fraction: tuple[float, float] = (0.14, 0.45)  # object side / shorter image side
    max_overlap: float = 0.35  # how much of an earlier object a later one may cover
    colours: tuple[str, ...] = field(default=PRETRAIN_COLOURS)  # for classes that leave the colour open

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)


def _combos(colours, shapes) -> dict[str, tuple[str | None, str]]:
    return {f"{c} {s}": (c, s) for c in colours for s in shapes}


PRETRAIN = SceneStyle(classes=_combos(PRETRAIN_COLOURS, PRETRAIN_SHAPES))
TASKS: dict[str, SceneStyle] = {
    "appearance": SceneStyle(
        classes=_combos(("red", "blue", "yellow"), ("square", "circle", "star")),
        fills=("striped", "outline"), backgrounds=("dark_noise",)),
    "new_word": SceneStyle(
        classes={"hexagon": (None, "hexagon"), "heart": (None, "heart"), "crescent": (None, "crescent")},
        distractor_shapes=PRETRAIN_SHAPES),
    "many": SceneStyle(classes=_combos(("red", "blue", "green", "purple", "cyan"), PRETRAIN_SHAPES), objects=(2, 6)),
}


def _covered(box, other) -> float:
    """Fraction of `other` covered by `box`."""
    w = min(box[2], other[2]) - max(box[0], other[0])
    h = min(box[3], other[3]) - max(box[1], other[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / ((other[2] - other[0]) * (other[3] - other[1]))


def make_scene(style: SceneStyle, rng: random.Random) -> tuple[Image.Image, list[tuple[list[int], str]]]:
    """One image and its labelled objects [(pixel xyxy box, class name)]; later objects may occlude earlier ones."""
    width, height = rng.randint(*style.image_size), rng.randint(*style.image_size)
    image = background(rng.choice(style.backgrounds), width, height, rng)
    clutter(image, rng, rng.randint(0, 6))
    placed: list[list[int]] = []
    labelled: list[tuple[list[int], str]] = []
    names = style.class_names
    count = rng.randint(*style.objects)
    distractors = rng.randint(0, 2) if style.distractor_shapes else 0
    for index in range(count + distractors):
        side = int(min(width, height) * rng.uniform(*style.object_fraction))
        for _attempt in range(25):
            x0, y0 = rng.randint(0, width - side), rng.randint(0, height - side)
            box = [x0, y0, x0 + side, y0 + side]
            if all(_covered(box, other) <= style.max_overlap for other in placed):
                break
        else:
            continue
        placed.append(box)
        if index < count:
            name = rng.choice(names)
            colour, shape = style.classes[name]
            labelled.append((box, name))
        else:
            name, shape = None, rng.choice(style.distractor_shapes)
            colour = None
        colour = colour or rng.choice(style.colours)
        paste_shape(image, shape, rng.choice(style.fills), COLOURS[colour], box, rng)
    return image, labelled


def scene_stream(style: SceneStyle, seed: int) -> Iterator[tuple[Image.Image, list[tuple[list[int], str]]]]:
    """An endless, seeded stream of scenes (for pre-training without writing images to disk)."""
    rng = random.Random(seed)
    while True:
        yield make_scene(style, rng)


def write_coco(directory: str | Path, style: SceneStyle, num_images: int, seed: int) -> Path:
    """Write `num_images` scenes as PNG files plus `annotations.json` (categories = the style's classes)."""
    directory = Path(directory)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    category_ids = {name: k + 1 for k, name in enumerate(style.class_names)}
    images, annotations = [], []
    stream = scene_stream(style, seed)
    for index in range(num_images):
        image, objects = next(stream)
        file_name = f"{index:05d}.png"
        image.save(directory / "images" / file_name)
        images.append({"id": index + 1, "file_name": file_name, "width": image.width, "height": image.height})
        for (x0, y0, x1, y1), name in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": category_ids[name],
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
    categories = [{"id": i, "name": name} for name, i in category_ids.items()]
    path = directory / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path
