"""Few-shot box-labelled sets: reading images safely, and COCO JSON import/export with validation."""
from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)

MAX_IMAGE_PIXELS = 40_000_000  # ~ 6300 x 6300; larger images are refused rather than risking memory
MAX_IMAGE_BYTES = 50 * 1024 * 1024


class DataError(ValueError):
    """Input data that cannot be used; the message says which file or annotation and what is wrong."""


def load_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Open an image file as RGB (EXIF orientation applied), refusing missing, corrupt or oversized files."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image '{path}' does not exist")
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise DataError(f"image '{path}' is {path.stat().st_size // 2**20} MB; the limit is {MAX_IMAGE_BYTES // 2**20} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > max_pixels:
                    raise DataError(f"image '{path}' is {image.width}x{image.height} pixels; "
                                    f"the limit is {max_pixels:,} pixels, downscale it first")
                image.load()
                return ImageOps.exif_transpose(image).convert("RGB")
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise DataError(f"image '{path}' cannot be read as an image ({error})") from error


@dataclass
class Sample:
    """One image with its boxes: (n, 4) pixel xyxy and (n,) class indices into the set's class list."""

    path: Path
    width: int
    height: int
    boxes: torch.Tensor
    classes: torch.Tensor
    image_id: int = 0

    def load(self) -> Image.Image:
        return load_image(self.path)


@dataclass
class FewShotSet:
    class_names: list[str]
    samples: list[Sample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def num_boxes(self) -> int:
        return sum(len(s.classes) for s in self.samples)


def check_box(box, width: int, height: int, where: str, tolerance: float = 1.0) -> list[float]:
    """Validate one [x, y, w, h] COCO box against its image; return it as pixel xyxy."""
    # bool is an int to Python (true would read as 1), and NaN passes every comparison below (it would be clamped
    # into a made-up box): both are refused, like infinities
    if not isinstance(box, (list, tuple)) or len(box) != 4 or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box):
        raise DataError(f"{where}: bbox must be four numbers [x, y, width, height], all finite, got {box!r}")
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise DataError(f"{where}: box [{x}, {y}, {w}, {h}] has zero or negative width/height")
    if x < -tolerance or y < -tolerance or x + w > width + tolerance or y + h > height + tolerance:
        raise DataError(f"{where}: box [{x}, {y}, {w}, {h}] lies outside the {width}x{height} image")
    return [max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)]


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"annotation file '{path}' does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"annotation file '{path}' is not valid JSON ({error})") from error
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"annotation file '{path}' is not COCO JSON: it needs 'images', 'annotations', 'categories'")
    return data


def load_coco(annotation_file: str | Path, images_dir: str | Path) -> FewShotSet:
    """Read a COCO detection file; category names become class names (in category-id order)."""
    annotation_file, images_dir = Path(annotation_file), Path(images_dir)
    data = _read_json(annotation_file)
    categories = sorted(data.get("categories") or [], key=lambda c: c.get("id", 0))
    if not categories:
        raise DataError(f"'{annotation_file}' has no categories; add at least one to 'categories'")
    category_index = {c["id"]: k for k, c in enumerate(categories)}
    class_names = [str(c.get("name", "")).strip() for c in categories]
    samples: dict[int, Sample] = {}
    for entry in data["images"]:
        file_name = str(entry.get("file_name", ""))
        path = (images_dir / file_name).resolve()
        if images_dir.resolve() not in path.parents:
            raise DataError(f"image file name '{file_name}' points outside the images directory")
        with load_image(path) as image:
            width, height = image.size
        samples[entry["id"]] = Sample(path, width, height, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long),
                                      image_id=entry["id"])
    boxes: dict[int, list] = {i: [] for i in samples}
    for annotation in data.get("annotations") or []:
        where = f"annotation {annotation.get('id', '?')}"
        if annotation.get("image_id") not in samples:
            raise DataError(f"{where} names image id {annotation.get('image_id')!r}, which is not in 'images'")
        if annotation.get("category_id") not in category_index:
            raise DataError(f"{where} names category id {annotation.get('category_id')!r}, which is not in 'categories'")
        sample = samples[annotation["image_id"]]
        xyxy = check_box(annotation.get("bbox"), sample.width, sample.height, f"{where} ({sample.path.name})")
        boxes[annotation["image_id"]].append((xyxy, category_index[annotation["category_id"]]))
    for image_id, items in boxes.items():
        if items:
            samples[image_id].boxes = torch.tensor([b for b, _ in items], dtype=torch.float32)
            samples[image_id].classes = torch.tensor([c for _, c in items], dtype=torch.long)
    dataset = FewShotSet(class_names, list(samples.values()))
    logger.info("read %d images, %d boxes, %d classes from %s", len(dataset), dataset.num_boxes(),
                len(class_names), annotation_file)
    return dataset


def to_coco(dataset: FewShotSet) -> dict:
    """The set as a COCO detection dict (category ids 1..K in class order, image ids kept)."""
    images, annotations = [], []
    for image_index, sample in enumerate(dataset.samples):
        image_id = sample.image_id or image_index + 1
        images.append({"id": image_id, "file_name": sample.path.name, "width": sample.width, "height": sample.height})
        for box, cls in zip(sample.boxes.tolist(), sample.classes.tolist()):
            x0, y0, x1, y1 = box
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cls + 1,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(dataset.class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}
