"""Label tab: upload images, move between them, draw and save boxes, mark the split, pre-annotate with a model."""
from __future__ import annotations

import logging
from pathlib import Path

from app import access, store
from app.context import AppContext
from app.image_files import ImageRejected, store_upload
from app.ui import display_scale
from app.ui.messages import from_error, ok, problem

logger = logging.getLogger(__name__)

MAX_FILES_PER_UPLOAD = 500


def _hex_to_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def image_choices(ctx: AppContext, project_id: int | None) -> list[tuple[str, int]]:
    if project_id is None:
        return []
    with ctx.database.session() as session:
        access.require(session, ctx.signed_in_user(), "read", project_id=project_id)
        images = store.list_images(session, project_id)
        return [(f"{k}/{len(images)} · {i.original_name} · {i.split} · {len(i.boxes)} boxes", i.id)
                for k, i in enumerate(images, start=1)]


def upload_images(ctx: AppContext, project_id: int | None, files: list | None, split: str) -> tuple[int | None, str]:
    """Store every readable image (once per content); report each rejected file by name. Returns (first new id, msg)."""
    if project_id is None:
        return None, problem("create or choose a project before uploading images")
    files = [f for f in (files or []) if f]
    if not files:
        return None, problem("choose one or more image files to upload")
    if len(files) > MAX_FILES_PER_UPLOAD:
        return None, problem(f"{len(files)} files at once is too many; upload at most {MAX_FILES_PER_UPLOAD}")
    try:
        access.check(ctx, "write", project_id=project_id)  # before any file is stored
    except Exception as error:
        return None, from_error(error)
    added, duplicates, rejected, first = 0, 0, [], None
    max_bytes = ctx.settings.max_upload_mb * 2**20
    for item in files:
        path = Path(getattr(item, "name", None) or getattr(item, "path", None) or item)
        original = getattr(item, "orig_name", None) or path.name
        try:
            ctx.check_upload(path)
            stored = store_upload(path, ctx.settings.images_dir, max_bytes, original_name=original)
            with ctx.database.session() as session:
                access.require(session, ctx.signed_in_user(), "write", project_id=project_id)
                record, new = store.add_image(session, project_id, stored, split)
                added, duplicates = added + new, duplicates + (not new)
                first = first or record.id
        except ImageRejected as error:
            rejected.append(str(error))
        except Exception as error:
            rejected.append(from_error(error))
    parts = []
    if added:
        parts.append(f"added {added} image{'s' * (added != 1)} as {split}")
    if duplicates:
        parts.append(f"{duplicates} already in the project")
    text = "; ".join(parts) or "nothing added"
    if rejected:
        return first, problem(f"{text}. Not added: " + " | ".join(rejected))
    return first, ok(text + "; draw boxes on them in the editor below")


def coloured_boxes(session, record) -> list[dict]:
    """An image's confirmed boxes for the box editors, each in its class's colour."""
    colours = {c.name: c.colour for c in store.list_classes(session, record.project_id)}
    return [{**box, "color": _hex_to_rgb(colours.get(box["label"], "#000000"))} for box in store.boxes_of(record)]


def editor_value(ctx: AppContext, image_id: int | None) -> tuple[dict | None, int, str, str]:
    """(annotator value, revision, split, one-line info) for an image."""
    if image_id is None:
        return None, -1, "train", "No image yet: upload some above."
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "read", image_id=image_id)
            record = store.get_image(session, image_id)
            boxes = coloured_boxes(session, record)
            path = store.image_file(ctx.settings.images_dir, record)
            k = display_scale.factor(record.width, record.height)
            info = (f"**{record.original_name}** · {record.width}x{record.height}{f' (shown x{k})' if k > 1 else ''}"
                    f" · {len(boxes)} saved boxes")
            return ({"image": display_scale.page_image(ctx, path, k), "boxes": display_scale.to_page(boxes, k)},
                    record.revision, record.split, info)
    except Exception as error:
        return None, -1, "train", from_error(error)


def save_boxes(ctx: AppContext, image_id: int | None, revision: int | None, value: dict | None) -> tuple[str, int]:
    if image_id is None:
        return problem("no image is open; upload or choose one"), -1
    boxes = (value or {}).get("boxes") or []
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "write", image_id=image_id)
            shown = store.get_image(session, image_id)
            boxes = display_scale.from_page(boxes, display_scale.factor(shown.width, shown.height))
            record = store.save_boxes(session, image_id, boxes, revision if revision is not None and revision >= 0
                                      else None)
            return ok(f"saved {len(record.boxes)} boxes on '{record.original_name}'"), record.revision
    except Exception as error:
        return from_error(error), revision if revision is not None else -1


def set_split(ctx: AppContext, image_id: int | None, split: str) -> str:
    if image_id is None:
        return problem("no image is open")
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "write", image_id=image_id)
            record = store.set_split(session, image_id, split)
            role = "used for tuning" if split == "train" else "kept out of tuning, for evaluation"
            return ok(f"'{record.original_name}' is now {split} ({role})")
    except Exception as error:
        return from_error(error)


def delete_image(ctx: AppContext, image_id: int | None) -> str:
    if image_id is None:
        return problem("no image is open")
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "write", image_id=image_id)
            return ok(f"removed '{store.delete_image(session, image_id)}' and its boxes from the project")
    except Exception as error:
        return from_error(error)


def neighbour(ctx: AppContext, project_id: int | None, image_id: int | None, offset: int) -> int | None:
    ids = [value for _, value in image_choices(ctx, project_id)]
    if not ids:
        return None
    if image_id not in ids:
        return ids[0]
    return ids[(ids.index(image_id) + offset) % len(ids)]


def preannotate(ctx: AppContext, project_id: int | None, image_id: int | None, source: str, threshold: float,
                current: dict | None) -> tuple[dict | None, str]:
    """Boxes proposed by the model (zero-shot or the latest prompt) replace the editor's boxes, unsaved."""
    if project_id is None or image_id is None:
        return current, problem("open an image first")
    try:
        access.check(ctx, "write", project_id=project_id, image_id=image_id)
        with ctx.database.session() as session:
            classes = store.list_classes(session, project_id)
            names, colours = [c.name for c in classes], {c.name: c.colour for c in classes}
            record = store.get_image(session, image_id)
            path = store.image_file(ctx.settings.images_dir, record)  # refused with a message if the file is gone
            prompt_row = (store.latest_prompt(session, project_id, ctx.models.fingerprint())
                          if source == "latest prompt" else None)
            prompt_dir = ctx.settings.prompts_dir / prompt_row.relative_dir if prompt_row else None
            k = display_scale.factor(record.width, record.height)
    except Exception as error:
        return current, from_error(error)
    if not names:
        return current, problem("add classes first: the model looks for the project's class names")
    if source == "latest prompt" and prompt_dir is None:
        return current, problem("no prompt tuned on this model yet; press Tune first, or use zero-shot")
    try:
        found = ctx.models.detect(path, names, prompt_dir, threshold)
    except Exception as error:
        return current, from_error(error)
    boxes = [{"label": found.class_names[c], "color": _hex_to_rgb(colours[found.class_names[c]]),
              "xmin": round(b[0]), "ymin": round(b[1]), "xmax": round(b[2]), "ymax": round(b[3])}
             for b, c in zip(found.boxes.tolist(), found.classes.tolist())]
    what = "zero-shot model" if prompt_dir is None else f"prompt from job {prompt_row.job_id}"
    return ({"image": display_scale.page_image(ctx, path, k), "boxes": display_scale.to_page(boxes, k)},
            ok(f"the {what} proposed {len(boxes)} boxes (score >= {threshold:.2f}); correct them and press Save"))
