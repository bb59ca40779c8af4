"""Database reads and writes of tuning jobs (queue, claim, progress, cancel, retry) and of the prompts they make."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import PromptRecord, TuningJob, utcnow
from app.store.common import StoreError, _get
from app.store.images import list_images
from app.store.projects import list_classes

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
