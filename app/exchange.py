"""Moving work in and out of the app: projects as COCO zips, uploaded COCO sets, and tuned prompts as zips."""
from __future__ import annotations

import contextlib
import json
import logging
import shutil
import stat
import tempfile
import uuid
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterator

from sqlalchemy import select

from app import store
from app.db import Database
from app.image_files import ImageRejected, store_upload, stored_path
from app.models import ImageRecord, PromptRecord
from app.settings import Settings
from sdpt.data import DataError, check_box
from sdpt.prompt_io import CONFIG_NAME, WEIGHTS_NAME, PromptFileError, load_prompt

logger = logging.getLogger(__name__)

MAX_ZIP_BYTES = 2 * 1024**3
MAX_ZIP_FILES = 10_000
ANNOTATIONS_NAME = "annotations.json"


class ExchangeError(ValueError):
    """An import or export that cannot be carried out; the message says what to fix. Nothing was written."""


# ---- zips: safe extraction ---------------------------------------------------------------------------------

def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    parts = name.replace("\\", "/").split("/")  # zips made on Windows may use backslashes
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if ".." in parts:
        return "climbs out of its folder ('..')"
    if stat.S_ISLNK(info.external_attr >> 16):  # a link could point anywhere on this machine
        return "is a symbolic link"
    return None


@contextlib.contextmanager
def _extracted(zip_path: Path, scratch: Path, max_total_bytes: int, max_files: int) -> Iterator[tuple[Path, list[str]]]:
    """Check every member of the zip, then extract its files into a temporary folder that is always removed.

    Yields (folder, posix names of the extracted files). Sizes are checked from the directory before anything is
    written; zipfile never inflates a member past its declared size, so a lying header cannot exceed the limit.
    """
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ExchangeError(f"'{zip_path.name}' is not a zip file; upload a .zip archive") from error
    scratch.mkdir(parents=True, exist_ok=True)  # on the data disk: /tmp may be a small RAM disk
    with archive, tempfile.TemporaryDirectory(prefix=".import-", dir=scratch) as temp:
        members = archive.infolist()
        if len(members) > max_files:
            raise ExchangeError(f"'{zip_path.name}' holds {len(members)} entries; the limit is {max_files}, "
                                "split it into smaller zips")
        for info in members:
            reason = _unsafe_reason(info)
            if reason:
                raise ExchangeError(f"'{zip_path.name}' was refused: its member {info.filename!r} {reason}; "
                                    "zip the files with relative paths only")
        total = sum(info.file_size for info in members)
        if total > max_total_bytes:
            raise ExchangeError(f"'{zip_path.name}' unpacks to {total / 2**20:.0f} MB; the limit is "
                                f"{max_total_bytes / 2**20:.0f} MB, split it into smaller zips")
        folder, names = Path(temp), []
        for info in members:
            parts = [p for p in info.filename.replace("\\", "/").split("/") if p not in ("", ".")]
            if info.is_dir() or not parts or parts[0] == "__MACOSX":  # macOS adds resource forks there
                continue
            target = folder.joinpath(*parts)
            if folder.resolve() not in target.resolve().parents:  # defence in depth after _unsafe_reason
                raise ExchangeError(f"'{zip_path.name}' member {info.filename!r} points outside its folder")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError, zlib.error) as error:
                raise ExchangeError(f"'{zip_path.name}' is damaged or encrypted ({info.filename}: {error}); "
                                    "zip the files again without a password") from error
            names.append("/".join(parts))
        yield folder, names


@contextlib.contextmanager
def _new_zip(target: Path) -> Iterator[zipfile.ZipFile]:
    """A zip written beside `target` and renamed at the end, so a failed export never leaves a half-written zip."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            yield archive
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


# ---- projects as COCO ----------------------------------------------------------------------------------------

def export_project_zip(database: Database, settings: Settings, project_id: int, out_dir: Path,
                       include_suggestions: bool = False) -> Path:
    """Write project-<id>.zip: annotations.json (COCO plus 'split' and 'color') and the images under images/.

    Only confirmed boxes by default; `include_suggestions` adds the model's pending suggestions, each flagged
    `"suggested": true` with its `score` (the import here skips flagged ones).
    """
    from app.suggestions import list_suggestions

    images, annotations, files = [], [], []
    with _refusing(), database.session() as session:
        store.get_project(session, project_id)
        classes = store.list_classes(session, project_id)
        category_of = {label.id: k + 1 for k, label in enumerate(classes)}
        categories = [{"id": k + 1, "name": c.name, "color": c.colour} for k, c in enumerate(classes)]
        for record in store.list_images(session, project_id):
            # Zip paths are built from ids and hashes only: a user's file name never becomes a path.
            name = f"images/{record.id}-{record.sha256[:8]}{record.suffix}"
            images.append({"id": record.id, "file_name": name, "width": record.width, "height": record.height,
                           "split": record.split, "original_name": record.original_name})
            files.append((name, store.image_file(settings.images_dir, record), record.original_name))
            for box in record.boxes:
                w, h = box.x1 - box.x0, box.y1 - box.y0
                annotations.append({"id": len(annotations) + 1, "image_id": record.id,
                                    "category_id": category_of[box.class_id], "bbox": [box.x0, box.y0, w, h],
                                    "area": w * h, "iscrowd": 0})
            for suggestion in list_suggestions(session, record.id) if include_suggestions else []:
                if suggestion.class_id not in category_of:
                    continue  # its class was deleted
                w, h = suggestion.x1 - suggestion.x0, suggestion.y1 - suggestion.y0
                annotations.append({"id": len(annotations) + 1, "image_id": record.id,
                                    "category_id": category_of[suggestion.class_id],
                                    "bbox": [suggestion.x0, suggestion.y0, w, h], "area": w * h, "iscrowd": 0,
                                    "suggested": True, "score": round(suggestion.score, 4)})
    coco = {"images": images, "annotations": annotations, "categories": categories}
    target = Path(out_dir) / f"project-{project_id}.zip"
    with _new_zip(target) as archive:
        archive.writestr(ANNOTATIONS_NAME, json.dumps(coco, indent=2, ensure_ascii=False))
        for name, path, shown in files:
            if not path.is_file():
                raise ExchangeError(f"the stored file of image '{shown}' is missing from {settings.images_dir}; "
                                    "delete that image or upload it again, then export")
            archive.write(path, name, compress_type=zipfile.ZIP_STORED)  # images are compressed already
    logger.info("exported project %d: %d images, %d boxes to %s", project_id, len(images), len(annotations), target)
    return target


def _read_coco(annotation_file: Path) -> dict:
    try:
        data = json.loads(Path(annotation_file).read_text(encoding="utf-8"))
    except OSError as error:
        raise ExchangeError(f"annotation file '{annotation_file.name}' cannot be read ({error.strerror})") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExchangeError(f"'{annotation_file.name}' is not valid JSON ({error}); fix or re-export it") from error
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("categories", []), list) or not isinstance(data.get("annotations", []), list):
        raise ExchangeError(f"'{annotation_file.name}' is not COCO JSON: it needs lists 'images', 'annotations' "
                            "and 'categories'")
    return data


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _basename(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).name


@contextlib.contextmanager
def _refusing(prefix: str = "") -> Iterator[None]:
    """Turn the store's refusals into ExchangeError (put it outside the session, so the rollback happens first)."""
    try:
        yield
    except store.StoreError as error:
        raise ExchangeError(f"{prefix}{error}") from error


def _read_categories(data: dict, where: str) -> dict[int, tuple[str, str, str | None]]:
    """COCO category id -> (class name, duplicate key, '#rrggbb' colour or None)."""
    categories: dict[int, tuple[str, str, str | None]] = {}
    for category in data.get("categories", []):
        if not isinstance(category, dict) or not _is_id(category.get("id")) or category["id"] in categories:
            raise ExchangeError(f"{where}: category {str(category)[:200]} needs a unique integer 'id' and a 'name'")
        with _refusing(f"{where}: category {category['id']}: "):
            name, key = store.clean_name(category.get("name"), "class")
        colour = str(category.get("color") or "").lower()
        valid = len(colour) == 7 and colour[0] == "#" and all(c in "0123456789abcdef" for c in colour[1:])
        categories[category["id"]] = (name, key, colour if valid else None)
    return categories


def _read_images(data: dict, where: str, image_files: dict[str, Path]) -> dict[int, dict]:
    """COCO image id -> {path, split, shown name, boxes: []}; every listed file must be among `image_files`."""
    by_basename: dict[str, Path | None] = {}
    for key, path in image_files.items():
        by_basename[_basename(key)] = None if _basename(key) in by_basename else path  # None: ambiguous
    entries: dict[int, dict] = {}
    for entry in data["images"]:
        if not isinstance(entry, dict) or not _is_id(entry.get("id")) or entry["id"] in entries \
                or not isinstance(entry.get("file_name"), str):
            raise ExchangeError(f"{where}: image entry {str(entry)[:200]} needs a unique integer 'id' and a "
                                "'file_name'")
        split = entry.get("split", "train")
        if split not in store.SPLITS:
            raise ExchangeError(f"{where}: image {entry['id']} has split {split!r}; use 'train' or 'heldout'")
        path = image_files.get(entry["file_name"]) or by_basename.get(_basename(entry["file_name"]))
        if path is None or not Path(path).is_file():
            raise ExchangeError(f"{where}: image {entry['id']} names file '{entry['file_name']}', which is not "
                                "among the uploaded files; add it or remove that entry")
        entries[entry["id"]] = {"path": Path(path), "split": split, "boxes": [],
                                "shown": str(entry.get("original_name") or _basename(entry["file_name"]))}
    return entries


def import_coco(database: Database, settings: Settings, project_id: int, annotation_file: Path,
                image_files: dict[str, Path]) -> dict:
    """Add a COCO set's classes, images and boxes to a project, all or nothing.

    `image_files` maps COCO file names to files on disk (a unique base name also matches). Images the project holds
    already (same content) are skipped with their boxes, so an import never changes existing labels.
    """
    annotation_file = Path(annotation_file)
    where = annotation_file.name
    data = _read_coco(annotation_file)
    with _refusing(), database.session() as session:
        store.get_project(session, project_id)  # refuse before storing any image file
    categories = _read_categories(data, where)
    entries = _read_images(data, where, image_files)
    annotations = data.get("annotations", [])
    for number, annotation in enumerate(annotations, start=1):
        if not isinstance(annotation, dict):
            raise ExchangeError(f"{where}: annotation {number} is not an object")
        name = f"{where}: annotation {annotation.get('id', number)}"
        if annotation.get("image_id") not in entries:
            raise ExchangeError(f"{name} names image id {annotation.get('image_id')!r}, which is not in 'images'")
        if annotation.get("category_id") not in categories:
            raise ExchangeError(f"{name} names category id {annotation.get('category_id')!r}, which is not in "
                                "'categories'")

    # Files go into the content-addressed store first (the boxes are checked against each image's real size); a
    # refused import takes back the files it added, so it leaves the store as it found it. Rows are written last.
    stored, added = {}, []
    try:
        for image_id, entry in entries.items():
            try:
                stored[image_id] = store_upload(entry["path"], settings.images_dir, settings.max_upload_mb * 2**20,
                                                entry["shown"])
            except ImageRejected as error:
                raise ExchangeError(f"{where}: image {image_id}: {error}") from error
            if stored[image_id].added:
                added.append(stored[image_id])
        counts = _write_coco(database, project_id, where, categories, entries, annotations, stored)
    except Exception:
        _take_back(database, settings, added)
        raise
    logger.info("imported %s into project %d: %s", where, project_id, counts)
    return counts


def _take_back(database: Database, settings: Settings, added: list) -> None:
    """Delete store files a refused import added, unless a row (another import meanwhile) uses them."""
    with database.session() as session:
        for image in added:
            if session.scalar(select(ImageRecord.id).where(ImageRecord.sha256 == image.sha256).limit(1)) is None:
                stored_path(settings.images_dir, image.sha256, image.suffix).unlink(missing_ok=True)


def _write_coco(database: Database, project_id: int, where: str, categories: dict, entries: dict,
                annotations: list, stored: dict) -> dict:
    """Check every box against its stored image, then write classes, images and boxes in one transaction."""
    for number, annotation in enumerate(annotations, start=1):
        if annotation.get("suggested") is True:
            continue  # a model's suggestion exported with the flag, not a confirmed box: never imported as one
        image = stored[annotation["image_id"]]  # real size: EXIF rotation may differ from the JSON's width/height
        name = f"{where}: annotation {annotation.get('id', number)} ('{image.original_name}')"
        try:
            x0, y0, x1, y1 = check_box(annotation.get("bbox"), image.width, image.height, name)
        except DataError as error:
            raise ExchangeError(f"{error}; fix the box or remove it") from error
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise ExchangeError(f"{name}: box is under one pixel wide or high inside the image; remove it")
        entries[annotation["image_id"]]["boxes"].append((annotation["category_id"], x0, y0, x1, y1))

    counts = {"images": 0, "boxes": 0, "classes_added": 0, "skipped_duplicates": 0}
    with _refusing(f"{where}: "), database.session() as session:  # one transaction: a refusal rolls it all back
        labels = {c.name_key: c for c in store.list_classes(session, project_id)}
        for name, key, colour in categories.values():
            if key not in labels:  # several categories may share one casefolded name: they become one class
                labels[key] = store.add_class(session, project_id, name, colour)
                counts["classes_added"] += 1
        for image_id, entry in entries.items():
            record, new = store.add_image(session, project_id, stored[image_id], entry["split"])
            if not new:
                counts["skipped_duplicates"] += 1
                continue
            boxes = [{"label": labels[categories[c][1]].name, "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1}
                     for c, x0, y0, x1, y1 in entry["boxes"]]
            if boxes:
                store.save_boxes(session, record.id, boxes)
            counts["images"] += 1
            counts["boxes"] += len(boxes)
    return counts


def import_zip(database: Database, settings: Settings, project_id: int, zip_path: Path,
               max_total_bytes: int = MAX_ZIP_BYTES, max_files: int = MAX_ZIP_FILES) -> dict:
    """Import a zip of a COCO file (annotations.json at the top, or its only .json) and its images."""
    zip_path = Path(zip_path)
    with _extracted(zip_path, settings.data_dir, max_total_bytes, max_files) as (folder, names):
        if ANNOTATIONS_NAME in names:
            annotation_name = ANNOTATIONS_NAME
        else:
            candidates = [n for n in names if n.lower().endswith(".json")]
            if len(candidates) != 1:
                raise ExchangeError(f"'{zip_path.name}' needs {ANNOTATIONS_NAME} at its top level (or exactly one "
                                    f".json file); it has {len(candidates)} .json files")
            annotation_name = candidates[0]
        parent = str(PurePosixPath(annotation_name).parent)  # COCO file names are relative to the JSON's folder
        prefix = "" if parent == "." else f"{parent}/"
        image_files = {name.removeprefix(prefix): folder / name for name in names if name != annotation_name}
        return import_coco(database, settings, project_id, folder / annotation_name, image_files)


# ---- prompts ---------------------------------------------------------------------------------------------------

def export_prompt_zip(settings: Settings, prompt_record: PromptRecord, out_dir: Path) -> Path:
    """Write prompt-<id>.zip with prompt_config.json and prompt.safetensors at its top level."""
    directory = settings.prompts_dir / prompt_record.relative_dir
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if not (directory / name).is_file()]
    if missing:
        raise ExchangeError(f"prompt {prompt_record.id} lacks {', '.join(missing)} in {directory}; tune it again")
    target = Path(out_dir) / f"prompt-{prompt_record.id}.zip"
    with _new_zip(target) as archive:
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            archive.write(directory / name, name)
    logger.info("exported prompt %d to %s", prompt_record.id, target)
    return target


def import_prompt_zip(database: Database, settings: Settings, project_id: int, zip_path: Path, detector,
                      job_id: int | None = None, max_total_bytes: int = MAX_ZIP_BYTES) -> PromptRecord:
    """Add a prompt zip to a project once it is proven to load on `detector` (the base model it must match)."""
    zip_path = Path(zip_path)
    with _extracted(zip_path, settings.data_dir, max_total_bytes, max_files=16) as (folder, names):
        found: dict[str, Path] = {}
        for name in names:  # one folder level is fine (a zipped prompt directory); other files are not
            base = PurePosixPath(name).name
            if base not in (CONFIG_NAME, WEIGHTS_NAME) or base in found:
                raise ExchangeError(f"'{zip_path.name}' is not a prompt zip: it holds {name!r}; a prompt zip holds "
                                    f"only {CONFIG_NAME} and {WEIGHTS_NAME}")
            found[base] = folder / name
        if len(found) != 2:
            raise ExchangeError(f"'{zip_path.name}' is not a prompt zip: it needs {CONFIG_NAME} and {WEIGHTS_NAME}")
        prompt_dir = folder / "prompt"
        prompt_dir.mkdir()
        for base, path in found.items():
            path.replace(prompt_dir / base)
        try:
            prompt, config = load_prompt(prompt_dir, detector)
        except PromptFileError as error:
            raise ExchangeError(str(error).replace(str(prompt_dir), zip_path.name)) from error
        class_names = config["class_names"]
        if not isinstance(class_names, list) or not all(isinstance(n, str) for n in class_names):
            raise ExchangeError(f"'{zip_path.name}': {CONFIG_NAME} has class_names {class_names!r}; it needs a list "
                                "of names")
        trainable = prompt.trainable_parameters()
        del prompt
        with _refusing(), database.session() as session:
            store.get_project(session, project_id)
        relative = f"{project_id}/imported-{uuid.uuid4().hex[:8]}"
        target = settings.prompts_dir / relative
        target.mkdir(parents=True)
        for base in (CONFIG_NAME, WEIGHTS_NAME):
            shutil.copyfile(prompt_dir / base, target / base)
    try:
        with database.session() as session:
            record = PromptRecord(project_id=project_id, job_id=job_id, method=config["method"],
                                  relative_dir=relative, base_model=str(config["base_model"]),
                                  base_fingerprint=str(config["base_fingerprint"]), class_names=class_names,
                                  trainable_parameters=trainable, final_loss=None)
            session.add(record)
            session.flush()
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # no row, so no files either
        raise
    logger.info("imported prompt %s (%s, base %s) into project %d as %s", zip_path.name, config["method"],
                config["base_model"], project_id, relative)
    return record
