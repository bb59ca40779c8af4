"""Database reads and writes of images and their boxes."""
from __future__ import annotations

import math
import unicodedata
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.image_files import StoredImage, stored_path
from app.models import Box, ImageRecord
from app.store.common import SPLITS, StoreError, _get
from app.store.projects import get_project, list_classes

def add_image(session: Session, project_id: int, stored: StoredImage, split: str = "train") -> tuple[ImageRecord, bool]:
    """Add a stored image to a project; (record, True) when new, (existing record, False) when already there."""
    check_split(split)  # also for an image already there: a bad split is never ignored
    get_project(session, project_id)
    existing = session.scalar(select(ImageRecord).where(ImageRecord.project_id == project_id,
                                                        ImageRecord.sha256 == stored.sha256))
    if existing is not None:
        return existing, False
    record = ImageRecord(project_id=project_id, sha256=stored.sha256, suffix=stored.suffix,
                         original_name=stored.original_name, width=stored.width, height=stored.height,
                         split=check_split(split))
    session.add(record)
    session.flush()
    return record, True


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise StoreError(f"split must be one of {SPLITS}, not {split!r}")
    return split


def list_images(session: Session, project_id: int) -> list[ImageRecord]:
    return list(session.scalars(select(ImageRecord).where(ImageRecord.project_id == project_id)
                                .order_by(ImageRecord.id)))


def get_image(session: Session, image_id: int) -> ImageRecord:
    return _get(session, ImageRecord, image_id, "image")


def image_file(images_dir: Path, record: ImageRecord) -> Path:
    """The stored file of an image; a clear refusal when it has gone from disk (its boxes stay in the database)."""
    path = stored_path(images_dir, record.sha256, record.suffix)
    if not path.is_file():
        raise StoreError(f"the file of image '{record.original_name}' (id {record.id}) is missing from the image "
                         f"store {images_dir}: upload the image again, or restore that folder from a backup; its "
                         f"{len(record.boxes)} boxes are kept")
    return path


def set_split(session: Session, image_id: int, split: str) -> ImageRecord:
    record = get_image(session, image_id)
    record.split = check_split(split)
    return record


def delete_image(session: Session, image_id: int) -> str:
    record = get_image(session, image_id)
    name = record.original_name
    session.delete(record)  # the file stays: other projects may hold the same content
    return name


def coordinate(value, what: str) -> float:
    """One pixel coordinate from a user (page, API, HTTP): a finite number, never a bool, NaN or infinity, which
    comparisons and clipping would otherwise turn into a made-up box."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):  # "12" too: a number, not text
        raise StoreError(f"{what} must be a number of pixels, not {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond a float's range
        raise StoreError(f"{what} must be a finite number of pixels, not {value!r}") from None
    if not math.isfinite(number):
        raise StoreError(f"{what} must be a finite number of pixels, not {value!r}")
    return number


def box_coordinates(box: dict, what: str) -> tuple[float, float, float, float]:
    if not isinstance(box, dict):
        raise StoreError(f"{what} must be an object with xmin, ymin, xmax, ymax")
    missing = [k for k in ("xmin", "ymin", "xmax", "ymax") if k not in box]
    if missing:
        raise StoreError(f"{what} lacks {', '.join(missing)}")
    return tuple(coordinate(box[k], f"{what}'s {k}") for k in ("xmin", "ymin", "xmax", "ymax"))


def save_boxes(session: Session, image_id: int, boxes: list[dict], expected_revision: int | None = None,
               tolerance: float = 2.0, mark_reviewed: bool = True) -> ImageRecord:
    """Replace an image's boxes with `boxes` ({label, xmin, ymin, xmax, ymax} in pixels).

    `expected_revision` is the revision the editor loaded; when another tab saved since, nothing is written and the
    user is told to reload. Boxes a little outside the image are clipped; empty, inverted or far-outside boxes and
    unknown labels are refused with the box's number.
    """
    record = get_image(session, image_id)
    if expected_revision is not None and record.revision != expected_revision:
        raise StoreError(f"'{record.original_name}' was changed in another tab or window since you opened it; "
                         "reload the image (your unsaved boxes are still on screen) and save again")
    classes = {c.name_key: c for c in list_classes(session, record.project_id)}
    rows = []
    for number, box in enumerate(boxes, start=1):
        label = unicodedata.normalize("NFKC", str(box.get("label") or "")).strip()
        if not label:
            names = [c.name for c in classes.values()]
            shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
            raise StoreError(f"box {number} has no class; pick one of: {shown}")
        if label.casefold() not in classes:
            raise StoreError(f"box {number} has class {label!r}, which is not in this project "
                             "(renamed or deleted in another tab?); pick an existing class")
        x0, y0, x1, y1 = box_coordinates(box, f"box {number}")
        if x1 < x0 or y1 < y0:
            raise StoreError(f"box {number} is inverted (xmax < xmin or ymax < ymin); draw it again")
        if x0 < -tolerance or y0 < -tolerance or x1 > record.width + tolerance or y1 > record.height + tolerance:
            raise StoreError(f"box {number} [{x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}] lies outside the "
                             f"{record.width}x{record.height} image; draw it inside")
        x0, y0 = max(0.0, x0), max(0.0, y0)
        x1, y1 = min(float(record.width), x1), min(float(record.height), y1)
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise StoreError(f"box {number} is empty (under one pixel wide or high); draw it larger or delete it")
        rows.append(Box(class_id=classes[label.casefold()].id, x0=x0, y0=y0, x1=x1, y1=y1))
    record.boxes.clear()
    session.flush()
    record.boxes.extend(rows)
    record.revision += 1
    if mark_reviewed:  # a person saved what the image shows: pre-annotation jobs leave it alone from now on
        record.reviewed = True
    session.flush()
    return record


def boxes_of(record: ImageRecord) -> list[dict]:
    return [{"label": b.label.name, "xmin": b.x0, "ymin": b.y0, "xmax": b.x1, "ymax": b.y1} for b in record.boxes]
