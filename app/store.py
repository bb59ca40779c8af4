"""All database reads and writes of the app: plain functions taking a session. Errors a user can fix raise
`StoreError` with a message that says what to do; nothing is written when one is raised."""
from __future__ import annotations

import math
import unicodedata
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.image_files import StoredImage, stored_path
from app.models import DEFAULT_OWNER, Box, ClassLabel, ImageRecord, Project, PromptRecord, TuningJob, utcnow

PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
           "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075")
MAX_NAME = 100
MAX_CLASSES = 200
SPLITS = ("train", "heldout")


class StoreError(ValueError):
    """A request that cannot be carried out as asked; the message is shown to the user."""


def clean_name(name: str, what: str) -> tuple[str, str]:
    """(display name, duplicate key) for a user-given name: NFKC-normalised, trimmed, any script allowed."""
    text = unicodedata.normalize("NFKC", str(name or "")).strip()
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")  # no control characters
    if not text:
        raise StoreError(f"the {what} name is empty; type a name")
    if len(text) > MAX_NAME:
        raise StoreError(f"the {what} name is {len(text)} characters long; keep it under {MAX_NAME}")
    if not any(ch.isalnum() for ch in text):
        raise StoreError(f"the {what} name {text!r} has no letters or digits; the detector reads names as words")
    return text, text.casefold()


ID_RANGE = (-2**63, 2**63 - 1)  # what the databases' integer keys hold; an id outside it names no row


def id_in_range(key: int) -> bool:
    return ID_RANGE[0] <= key <= ID_RANGE[1]


def _get(session: Session, model, key: int, what: str):
    row = session.get(model, key) if key is not None and id_in_range(int(key)) else None
    if row is None:
        raise StoreError(f"that {what} no longer exists (deleted in another tab?); reload the page")
    return row


# ---- projects ---------------------------------------------------------------------------------------------

def list_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(func.lower(Project.name), Project.owner)))


def get_project(session: Session, project_id: int) -> Project:
    return _get(session, Project, project_id, "project")


def project_key(owner: str, key: str) -> str:
    """The unique key of a project name: per owner, so nothing about other users' projects can be learnt from a
    clash (user names cannot hold ':', so the key is unambiguous)."""
    return f"{owner}:{key}"


def create_project(session: Session, name: str, owner: str = DEFAULT_OWNER) -> Project:
    display, key = clean_name(name, "project")
    if session.scalar(select(Project).where(Project.name_key == project_key(owner, key))) is not None:
        raise StoreError(f"you have a project called {display!r} already; pick another name")
    project = Project(name=display, name_key=project_key(owner, key), owner=owner)
    session.add(project)
    session.flush()
    return project


def rename_project(session: Session, project_id: int, name: str) -> Project:
    project = get_project(session, project_id)
    display, key = clean_name(name, "project")
    clash = session.scalar(select(Project).where(Project.name_key == project_key(project.owner, key),
                                                 Project.id != project_id))
    if clash:
        raise StoreError(f"{project.owner} has a project called {display!r} already; pick another name")
    project.name, project.name_key = display, project_key(project.owner, key)
    return project


def delete_project(session: Session, project_id: int) -> str:
    project = get_project(session, project_id)
    name = project.name
    session.delete(project)
    return name


# ---- classes ----------------------------------------------------------------------------------------------

def list_classes(session: Session, project_id: int) -> list[ClassLabel]:
    return list(session.scalars(select(ClassLabel).where(ClassLabel.project_id == project_id)
                                .order_by(ClassLabel.position, ClassLabel.id)))


def _check_colour(colour: str) -> str:
    colour = (colour or "").strip().lower()
    if len(colour) != 7 or colour[0] != "#" or any(c not in "0123456789abcdef" for c in colour[1:]):
        raise StoreError(f"colour {colour!r} is not a '#rrggbb' colour")
    return colour


def add_class(session: Session, project_id: int, name: str, colour: str | None = None) -> ClassLabel:
    get_project(session, project_id)
    display, key = clean_name(name, "class")
    existing = list_classes(session, project_id)
    if any(c.name_key == key for c in existing):
        raise StoreError(f"class {display!r} exists already in this project")
    if len(existing) >= MAX_CLASSES:
        raise StoreError(f"a project holds at most {MAX_CLASSES} classes")
    colour = _check_colour(colour) if colour else PALETTE[len(existing) % len(PALETTE)]
    label = ClassLabel(project_id=project_id, name=display, name_key=key, colour=colour,
                       position=max((c.position for c in existing), default=-1) + 1)
    session.add(label)
    session.flush()
    return label


def rename_class(session: Session, class_id: int, name: str) -> ClassLabel:
    label = _get(session, ClassLabel, class_id, "class")
    display, key = clean_name(name, "class")
    if any(c.name_key == key and c.id != class_id for c in list_classes(session, label.project_id)):
        raise StoreError(f"class {display!r} exists already in this project")
    label.name, label.name_key = display, key
    return label


def set_class_colour(session: Session, class_id: int, colour: str) -> ClassLabel:
    label = _get(session, ClassLabel, class_id, "class")
    label.colour = _check_colour(colour)
    return label


def delete_class(session: Session, class_id: int) -> tuple[str, int]:
    """Delete a class and its boxes; returns (name, number of boxes removed)."""
    label = _get(session, ClassLabel, class_id, "class")
    boxes = session.scalar(select(func.count()).select_from(Box).where(Box.class_id == class_id)) or 0
    touched = session.scalars(select(Box.image_id).where(Box.class_id == class_id).distinct()).all()
    session.execute(Box.__table__.delete().where(Box.class_id == class_id))
    if touched:
        session.execute(update(ImageRecord).where(ImageRecord.id.in_(touched))
                        .values(revision=ImageRecord.revision + 1))
    name = label.name
    session.delete(label)
    return name, boxes


# ---- images and boxes -------------------------------------------------------------------------------------

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


# ---- tuning jobs and prompts ------------------------------------------------------------------------------

def enqueue_job(session: Session, project_id: int, method: str, steps: int, model_id: str,
                image_ids: list[int] | None = None, warm_from: int | None = None) -> TuningJob:
    """Queue a tuning job on the project's labelled training images (or the given ones); refuses what cannot train.

    Training images nobody has labelled or reviewed are left out (they are unlabelled, not empty). `warm_from` is a
    prompt id to continue from (warm retune) instead of starting anew.
    """
    from sdpt.methods import METHODS

    if method not in METHODS:
        raise StoreError(f"unknown method {method!r}; choose one of {', '.join(sorted(METHODS))}")
    if not 1 <= int(steps) <= 100_000:
        raise StoreError("steps must be between 1 and 100000")
    classes = list_classes(session, project_id)
    if not classes:
        raise StoreError("this project has no classes; add the classes you want to detect first")
    images = [i for i in list_images(session, project_id) if i.split == "train" and (i.boxes or i.reviewed)]
    if image_ids is not None:
        wanted = set(image_ids)
        images = [i for i in list_images(session, project_id) if i.id in wanted]
    if not any(i.boxes for i in images):
        raise StoreError("no training image has a box; draw boxes on some training images before tuning")
    if warm_from is not None:
        start = _get(session, PromptRecord, warm_from, "prompt")
        if start.project_id != project_id:
            raise StoreError(f"prompt {warm_from} belongs to another project; continue from one of this project's")
        if [n.casefold() for n in start.class_names] != [c.name_key for c in classes]:
            raise StoreError(f"prompt {warm_from} was tuned for the classes {', '.join(start.class_names)}; the "
                             "project now has other classes, so tune anew (untick 'continue from the latest prompt')")
        method = start.method  # a warm retune goes on with the prompt's own method
    job = TuningJob(project_id=project_id, method=method, steps=int(steps), model_id=model_id,
                    image_ids=[i.id for i in images], class_names=[c.name for c in classes], losses=[],
                    message="queued", kind="tune", prompt_id=warm_from)
    session.add(job)
    session.flush()
    return job


def claim_job(session: Session, worker_id: str) -> TuningJob | None:
    """Atomically take the oldest queued job. PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, so workers never wait
    on each other's claims. SQLite (one writer at a time): the UPDATE only succeeds for the worker that still sees
    the job queued."""
    if session.get_bind().dialect.name == "postgresql":
        job = session.scalar(select(TuningJob).where(TuningJob.status == "queued").order_by(TuningJob.id).limit(1)
                             .with_for_update(skip_locked=True))
        if job is None:
            session.commit()
            return None
        now = utcnow()
        job.status, job.worker_id, job.started_at, job.heartbeat_at = "running", worker_id, now, now
        job.message = "loading the model and images"
        session.commit()  # releases the row lock with the job marked running
        return job
    while True:
        job_id = session.scalar(select(TuningJob.id).where(TuningJob.status == "queued").order_by(TuningJob.id)
                                .limit(1))
        if job_id is None:
            return None
        now = utcnow()
        claimed = session.execute(update(TuningJob).where(TuningJob.id == job_id, TuningJob.status == "queued")
                                  .values(status="running", worker_id=worker_id, started_at=now, heartbeat_at=now,
                                          message="loading the model and images"))
        session.commit()
        if claimed.rowcount == 1:
            return session.get(TuningJob, job_id, populate_existing=True)


def record_progress(session: Session, job_id: int, step: int, loss: float | None, eta_s: float | None,
                    message: str = "") -> bool:
    """Store one progress figure; returns whether a cancel was requested."""
    job = session.get(TuningJob, job_id, populate_existing=True)
    job.step, job.loss, job.eta_s, job.heartbeat_at = step, loss, eta_s, utcnow()
    if loss is not None:
        job.losses = [*job.losses, [step, round(loss, 5)]]
    if message:
        job.message = message
    return job.cancel_requested


def heartbeat(session: Session, job_id: int) -> bool:
    job = session.get(TuningJob, job_id, populate_existing=True)
    job.heartbeat_at = utcnow()
    return job.cancel_requested


def finish_job(session: Session, job_id: int, status: str, message: str) -> TuningJob:
    job = session.get(TuningJob, job_id, populate_existing=True)
    job.status, job.message, job.finished_at = status, message, utcnow()
    return job


def request_cancel(session: Session, job_id: int) -> TuningJob:
    job = _get(session, TuningJob, job_id, "job")
    if job.status == "queued":
        job.status, job.message, job.finished_at = "cancelled", "cancelled before it started", utcnow()
    elif job.status == "running":
        job.cancel_requested, job.message = True, "cancelling..."
    else:
        raise StoreError(f"job {job_id} is {job.status}; only queued or running jobs can be cancelled")
    return job


def mark_stale_jobs_interrupted(session: Session, stale_after_s: float) -> list[int]:
    """Running jobs whose worker stopped sending heartbeats (it died) become 'interrupted'."""
    limit = utcnow() - timedelta(seconds=stale_after_s)
    stale = session.scalars(select(TuningJob).where(TuningJob.status == "running",
                                                    TuningJob.heartbeat_at < limit)
                            .with_for_update(skip_locked=True)).all()
    for job in stale:
        job.status, job.finished_at = "interrupted", utcnow()
        job.message = f"interrupted at step {job.step}/{job.steps}: its worker stopped (app restart or crash)"
    return [job.id for job in stale]


def retry_job(session: Session, job_id: int) -> TuningJob:
    old = _get(session, TuningJob, job_id, "job")
    if old.status not in ("interrupted", "failed", "cancelled"):
        raise StoreError(f"job {job_id} is {old.status}; only interrupted, failed or cancelled jobs can be run again")
    job = TuningJob(project_id=old.project_id, method=old.method, steps=old.steps, model_id=old.model_id,
                    image_ids=list(old.image_ids), class_names=list(old.class_names), losses=[],
                    message=f"queued again (from job {old.id})", kind=old.kind, prompt_id=old.prompt_id,
                    threshold=old.threshold)
    session.add(job)
    session.flush()
    return job


def list_jobs(session: Session, project_id: int, limit: int = 20) -> list[TuningJob]:
    return list(session.scalars(select(TuningJob).where(TuningJob.project_id == project_id)
                                .order_by(TuningJob.id.desc()).limit(limit)))


def get_job(session: Session, job_id: int) -> TuningJob:
    return _get(session, TuningJob, job_id, "job")


def current_job(session: Session, job_id: int, stale_after_s: float) -> TuningJob:
    """A job as it stands now for whoever asks: a running job whose worker has been silent for `stale_after_s` is
    marked interrupted here, without waiting for an idle worker to notice."""
    job = get_job(session, job_id)
    if job.status == "running" and job.heartbeat_at is not None and \
            job.heartbeat_at < utcnow() - timedelta(seconds=stale_after_s):
        mark_stale_jobs_interrupted(session, stale_after_s)  # updates `job` itself (one identity map)
        session.flush()
    return job


def add_prompt(session: Session, job: TuningJob, relative_dir: str, config: dict, final_loss: float | None
               ) -> PromptRecord:
    record = PromptRecord(project_id=job.project_id, job_id=job.id, method=config["method"],
                          relative_dir=relative_dir, base_model=config["base_model"],
                          base_fingerprint=config["base_fingerprint"], class_names=config["class_names"],
                          trainable_parameters=config["trainable_parameters"], final_loss=final_loss)
    session.add(record)
    session.flush()
    return record


def latest_prompt(session: Session, project_id: int, fingerprint: str | None = None) -> PromptRecord | None:
    query = select(PromptRecord).where(PromptRecord.project_id == project_id)
    if fingerprint is not None:
        query = query.where(PromptRecord.base_fingerprint == fingerprint)
    return session.scalar(query.order_by(PromptRecord.id.desc()).limit(1))
