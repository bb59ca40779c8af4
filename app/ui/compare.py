"""Compare tab: zero-shot and prompted detections side by side (one shared call), and class CAMs for both."""
from __future__ import annotations

import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from app import access, store
from app.context import AppContext
from app.ui.messages import from_error, ok, problem
from sdpt.cam import describe_cam
from sdpt.data import DataError, load_image

CAM_HELP = (f"**How the heat-map is made:** {describe_cam()}. Two maps (zero-shot and prompted) cost about two "
            "detections' worth of time each; red = where the evidence for the chosen class lies.")


def prompt_choices(ctx: AppContext, project_id: int | None) -> list[tuple[str, int]]:
    """The project's prompts that fit the loaded model, newest first."""
    if project_id is None:
        return []
    with ctx.database.session() as session:
        project = access.require(session, ctx.signed_in_user(), "read", project_id=project_id)
        fingerprint = ctx.models.fingerprint()
        rows = sorted((p for p in project.prompts if p.base_fingerprint == fingerprint), key=lambda p: -p.id)
        return [(f"{'job ' + str(p.job_id) if p.job_id else 'imported'} · {p.method} · "
                 f"{p.trainable_parameters:,} parameters · {p.created_at:%Y-%m-%d %H:%M}", p.id) for p in rows]


def prompt_dir(ctx: AppContext, prompt_id: int | None) -> Path | None:
    if prompt_id is None:
        return None
    with ctx.database.session() as session:
        access.require(session, ctx.signed_in_user(), "read", prompt_id=prompt_id)
        record = session.get(store.PromptRecord, prompt_id)
        return ctx.settings.prompts_dir / record.relative_dir if record else None


def _image(ctx: AppContext, image_id: int | None, upload: str | None) -> tuple[Image.Image, str]:
    """The picture to compare: a new upload (checked, not stored) or a project image."""
    if upload:
        ctx.check_upload(upload)
        try:
            return load_image(upload), Path(upload).name
        except DataError as error:
            raise store.StoreError(str(error).replace(f"image '{upload}'", "the uploaded image")) from error
    if image_id is None:
        raise store.StoreError("choose a project image or upload one to compare")
    with ctx.database.session() as session:
        access.require(session, ctx.signed_in_user(), "read", image_id=image_id)
        record = store.get_image(session, image_id)
        return load_image(store.image_file(ctx.settings.images_dir, record)), record.original_name


def _classes(ctx: AppContext, project_id: int) -> tuple[list[str], dict[str, str]]:
    with ctx.database.session() as session:
        access.require(session, ctx.signed_in_user(), "read", project_id=project_id)
        classes = store.list_classes(session, project_id)
        return [c.name for c in classes], {c.name: c.colour for c in classes}


SHOWN_PX = 640  # small images (the example's are ~140 px) are drawn at least this large so labels stay readable


def shown_size(image: Image.Image) -> Image.Image:
    """`image` scaled up (never down) so its longer side is at least SHOWN_PX."""
    scale = SHOWN_PX / max(image.size)
    if scale <= 1:
        return image
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)


def draw_detections(image: Image.Image, found, colours: dict[str, str]) -> Image.Image:
    """The detections drawn on a copy of `image` shown at a readable size: labels inside the picture, never cut."""
    canvas = shown_size(image.convert("RGB"))
    scale = canvas.width / image.width
    pen = ImageDraw.Draw(canvas)
    width = max(2, round(min(canvas.size) / 200))
    font = ImageFont.load_default(size=max(12, round(min(canvas.size) / 32)))
    for box, cls, score in zip(found.boxes.tolist(), found.classes.tolist(), found.scores.tolist()):
        name = found.class_names[cls]
        colour = colours.get(name, "#ff0000")
        box = [v * scale for v in box]
        pen.rectangle(box, outline=colour, width=width)
        label = f"{name} {score:.2f}"
        left, top, right, bottom = pen.textbbox((0, 0), label, font=font)
        text_w, text_h = right - left, bottom - top + 4
        x = min(max(0.0, box[0]), max(0.0, canvas.width - text_w))
        y = box[1] - text_h if box[1] >= text_h else box[1]  # above the box, or inside it at the image's top
        pen.rectangle((x, y, x + text_w, y + text_h), fill=colour)
        pen.text((x - left, y - top + 2), label, fill="white", font=font)
    return canvas


def compare(ctx: AppContext, project_id: int | None, prompt_id: int | None, image_id: int | None,
            upload: str | None, threshold: float):
    """(zero-shot picture, prompted picture, [[class, zero-shot count, prompted count]], message)."""
    if project_id is None:
        return None, None, [], problem("choose a project first")
    try:  # prompt and image must both belong to this project, which the user may read
        access.check(ctx, "read", project_id=project_id, prompt_id=prompt_id, image_id=None if upload else image_id)
    except Exception as error:
        return None, None, [], from_error(error)
    directory = prompt_dir(ctx, prompt_id)
    if directory is None:
        return None, None, [], problem("no prompt to compare yet: tune one (tab 3) or load a prompt file (tab 6)")
    try:
        names, colours = _classes(ctx, project_id)
        if not names:
            return None, None, [], problem("add classes first")
        picture, shown = _image(ctx, image_id, upload)
        start = time.perf_counter()
        (zero,), (tuned,) = ctx.models.detect_both([picture], names, directory, threshold)
        seconds = time.perf_counter() - start
    except Exception as error:
        return None, None, [], from_error(error)
    counts = [[name, int((zero.classes == k).sum()), int((tuned.classes == k).sum())] for k, name in enumerate(names)]
    counts.append(["all", len(zero), len(tuned)])
    return (ctx.served_image(draw_detections(picture, zero, colours), "zero-shot"),
            ctx.served_image(draw_detections(picture, tuned, colours), "prompted"), counts,
            ok(f"'{shown}': {len(zero)} zero-shot and {len(tuned)} prompted detections with score >= "
               f"{threshold:.2f} ({seconds:.1f} s for both)"))


def explain(ctx: AppContext, project_id: int | None, prompt_id: int | None, image_id: int | None,
            upload: str | None, class_name: str | None):
    """(zero-shot CAM overlay, prompted CAM overlay, message)."""
    from sdpt.cam import cam_overlay

    if project_id is None:
        return None, None, problem("choose a project first")
    try:
        access.check(ctx, "read", project_id=project_id, prompt_id=prompt_id, image_id=None if upload else image_id)
    except Exception as error:
        return None, None, from_error(error)
    directory = prompt_dir(ctx, prompt_id)
    if directory is None:
        return None, None, problem("no prompt yet: tune one (tab 3) or load a prompt file (tab 6)")
    try:
        names, _ = _classes(ctx, project_id)
        if class_name not in names:
            return None, None, problem("choose the class to explain")
        picture, shown = _image(ctx, image_id, upload)
        start = time.perf_counter()
        zero, tuned = ctx.models.cams(picture, names, names.index(class_name), directory)
        seconds = time.perf_counter() - start
    except Exception as error:
        return None, None, from_error(error)
    return (ctx.served_image(shown_size(cam_overlay(picture, zero)), "zero-shot-cam"),
            ctx.served_image(shown_size(cam_overlay(picture, tuned)), "prompted-cam"),
            ok(f"where each model looks for '{class_name}' in '{shown}' ({seconds:.1f} s for both maps)"))
