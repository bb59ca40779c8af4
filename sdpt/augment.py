"""Few-shot augmentation: extra fixed views of each training image (a horizontal mirror and a zoomed-out copy),
made once before tuning so that every view's prompt-independent prefix can still be cached.

A tuning run with `TrainConfig(augment=True)` sees each image three times per epoch: as it is, mirrored, and shrunk
to `ZOOM_OUT` of its size in the middle of a canvas of the original size filled with the image's mean colour (a
scale jitter that keeps the input size, so batches stay alike). Boxes follow each view.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from PIL import Image, ImageOps, ImageStat

from sdpt.data import FewShotSet, Sample

ZOOM_OUT = 0.75


def mirrored(image: Image.Image, sample: Sample) -> tuple[Image.Image, Sample]:
    boxes = sample.boxes.clone()
    if len(boxes):
        boxes[:, [0, 2]] = sample.width - sample.boxes[:, [2, 0]]
    return ImageOps.mirror(image), replace(sample, boxes=boxes)


def zoomed_out(image: Image.Image, sample: Sample, factor: float = ZOOM_OUT) -> tuple[Image.Image, Sample]:
    width, height = image.size
    small = image.resize((max(1, round(width * factor)), max(1, round(height * factor))), Image.BILINEAR)
    fill = tuple(round(v) for v in ImageStat.Stat(image).mean[:3])
    canvas = Image.new("RGB", (width, height), fill)
    left, top = (width - small.width) // 2, (height - small.height) // 2
    canvas.paste(small, (left, top))
    scale = torch.tensor([small.width / width, small.height / height] * 2)
    offset = torch.tensor([left, top, left, top], dtype=torch.float32)
    boxes = sample.boxes * scale + offset if len(sample.boxes) else sample.boxes.clone()
    return canvas, replace(sample, boxes=boxes)


def with_views(dataset: FewShotSet, images: list[Image.Image]) -> tuple[FewShotSet, list[Image.Image]]:
    """The dataset and its images followed by each image's mirrored and zoomed-out views."""
    samples, pictures = list(dataset.samples), list(images)
    for view in (mirrored, zoomed_out):
        for image, sample in zip(images, dataset.samples):
            picture, moved = view(image, sample)
            pictures.append(picture)
            samples.append(moved)
    return FewShotSet(dataset.class_names, samples), pictures
