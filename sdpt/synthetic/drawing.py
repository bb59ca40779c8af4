"""Drawing primitives for synthetic scenes: shapes, fills (textures) and backgrounds, all driven by a seeded RNG."""
from __future__ import annotations

import math
import random

from PIL import Image, ImageDraw

COLOURS = {
    "red": (214, 39, 40), "green": (44, 160, 44), "blue": (31, 90, 220), "yellow": (240, 210, 30),
    "orange": (255, 127, 14), "pink": (247, 129, 191), "white": (245, 245, 245), "black": (20, 20, 20),
    # Held out of pre-training (new colour words):
    "purple": (128, 50, 170), "cyan": (23, 200, 210), "brown": (140, 86, 45),
}


def _regular_polygon(box, sides: int, rotation: float = -math.pi / 2):
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    return [(cx + r * math.cos(rotation + 2 * math.pi * k / sides), cy + r * math.sin(rotation + 2 * math.pi * k / sides))
            for k in range(sides)]


def _star(box):
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    return [(cx + (r if k % 2 == 0 else r * 0.45) * math.cos(-math.pi / 2 + math.pi * k / 5),
             cy + (r if k % 2 == 0 else r * 0.45) * math.sin(-math.pi / 2 + math.pi * k / 5)) for k in range(10)]


def _cross(box):
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    a, b = 0.34, 0.66
    return [(x0 + a * w, y0), (x0 + b * w, y0), (x0 + b * w, y0 + a * h), (x1, y0 + a * h), (x1, y0 + b * h),
            (x0 + b * w, y0 + b * h), (x0 + b * w, y1), (x0 + a * w, y1), (x0 + a * w, y0 + b * h),
            (x0, y0 + b * h), (x0, y0 + a * h), (x0 + a * w, y0 + a * h)]


def _heart(box):
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    points = []
    for k in range(40):
        t = 2 * math.pi * k / 40
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        points.append((x0 + (x + 16) / 32 * w, y0 + (y + 17) / 30 * h))
    return points


def shape_mask(shape: str, size: int) -> Image.Image:
    """An 'L' mask (255 inside) of `shape` filling a size x size square."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    box = (0, 0, size - 1, size - 1)
    if shape == "square":
        draw.rectangle(box, fill=255)
    elif shape == "circle":
        draw.ellipse(box, fill=255)
    elif shape == "ring":
        draw.ellipse(box, fill=255)
        inset = size * 0.28
        draw.ellipse((inset, inset, size - 1 - inset, size - 1 - inset), fill=0)
    elif shape == "triangle":
        draw.polygon(_regular_polygon(box, 3, -math.pi / 2), fill=255)
    elif shape == "hexagon":
        draw.polygon(_regular_polygon(box, 6, 0.0), fill=255)
    elif shape == "star":
        draw.polygon(_star(box), fill=255)
    elif shape == "cross":
        draw.polygon(_cross(box), fill=255)
    elif shape == "heart":
        draw.polygon(_heart(box), fill=255)
    elif shape == "crescent":
        draw.ellipse(box, fill=255)
        draw.ellipse((size * 0.3, -size * 0.05, size * 1.25, size * 0.9), fill=0)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return mask


def fill_pattern(fill: str, colour, size: int, rng: random.Random) -> Image.Image:
    """An RGBA tile: the colour with a texture (solid, dotted, striped or outline)."""
    tile = Image.new("RGBA", (size, size), colour + (255,))
    if fill == "solid":
        return tile
    draw = ImageDraw.Draw(tile)
    contrast = tuple(255 - c for c in colour) + (255,)
    if fill == "dotted":
        step = max(4, size // 6)
        for y in range(step // 2, size, step):
            for x in range(step // 2, size, step):
                r = max(1, step // 4)
                draw.ellipse((x - r, y - r, x + r, y + r), fill=contrast)
    elif fill == "striped":
        step = max(4, size // 5)
        angle_shift = rng.randint(0, step)
        for k in range(-size, 2 * size, step):
            draw.line((k + angle_shift, 0, k + angle_shift + size, size), fill=contrast, width=max(1, step // 3))
    elif fill == "outline":
        tile = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    else:
        raise ValueError(f"unknown fill {fill!r}")
    return tile


def paste_shape(image: Image.Image, shape: str, fill: str, colour, box, rng: random.Random) -> None:
    """Draw one object into `image` within the square `box` (x0, y0, x1, y1)."""
    size = box[2] - box[0]
    mask = shape_mask(shape, size)
    if fill == "outline":
        from PIL import ImageFilter

        edge = mask.filter(ImageFilter.FIND_EDGES).filter(ImageFilter.MaxFilter(3))
        image.paste(Image.new("RGB", (size, size), colour), box[:2], edge)
        return
    image.paste(fill_pattern(fill, colour, size, rng).convert("RGB"), box[:2], mask)


def background(kind: str, width: int, height: int, rng: random.Random) -> Image.Image:
    """A background: flat, gradient or speckle (pre-training), or dark_noise (held out)."""
    base = tuple(rng.randint(90, 200) for _ in range(3))
    image = Image.new("RGB", (width, height), base)
    draw = ImageDraw.Draw(image)
    if kind == "gradient":
        other = tuple(rng.randint(60, 220) for _ in range(3))
        for y in range(height):
            t = y / max(1, height - 1)
            draw.line((0, y, width, y), fill=tuple(int(a + (b - a) * t) for a, b in zip(base, other)))
    elif kind == "speckle":
        for _ in range(width * height // 40):
            x, y = rng.randrange(width), rng.randrange(height)
            draw.point((x, y), fill=tuple(min(255, max(0, c + rng.randint(-50, 50))) for c in base))
    elif kind == "dark_noise":
        image = Image.effect_noise((width, height), 60).convert("RGB")
        image = Image.eval(image, lambda v: v // 3)
    elif kind != "flat":
        raise ValueError(f"unknown background {kind!r}")
    return image


def clutter(image: Image.Image, rng: random.Random, count: int) -> None:
    """Unlabelled distractors: thin lines and small grey blobs."""
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for _ in range(count):
        grey = rng.randint(70, 190)
        if rng.random() < 0.5:
            draw.line((rng.randrange(width), rng.randrange(height), rng.randrange(width), rng.randrange(height)),
                      fill=(grey, grey, grey), width=rng.randint(1, 2))
        else:
            x, y, r = rng.randrange(width), rng.randrange(height), rng.randint(2, 5)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(grey, grey, grey))
