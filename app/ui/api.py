"""The app's programmatic API (for gradio_client and scripts): JSON in, JSON out, user errors as gr.Error."""
from __future__ import annotations

import gradio as gr

from app import store
from app.context import AppContext
from app.image_files import ImageRejected, store_upload
from app.settings import DEFAULT_METHOD, DEFAULT_STEPS


def _call(ctx: AppContext, work):
    try:
        with ctx.database.session() as session:
            return work(session)
    except (store.StoreError, ImageRejected) as error:
        raise gr.Error(str(error)) from error


def register(ctx: AppContext) -> None:
    """Add the API endpoints to the Blocks being built (call inside `with gr.Blocks()`)."""

    def create_project(name: str) -> dict:
        return _call(ctx, lambda s: {"id": store.create_project(s, name).id})

    def add_class(project_id: int, name: str) -> dict:
        return _call(ctx, lambda s: {"id": store.add_class(s, int(project_id), name).id})

    def add_image(project_id: int, file: gr.FileData, split: str = "train") -> dict:
        def work(session):
            stored = store_upload(file["path"], ctx.settings.images_dir, ctx.settings.max_upload_mb * 2**20,
                                  original_name=file.get("orig_name"))
            record, new = store.add_image(session, int(project_id), stored, split)
            return {"id": record.id, "new": new, "width": record.width, "height": record.height,
                    "revision": record.revision}
        return _call(ctx, work)

    def get_boxes(image_id: int) -> dict:
        def work(session):
            record = store.get_image(session, int(image_id))
            return {"boxes": store.boxes_of(record), "revision": record.revision, "split": record.split}
        return _call(ctx, work)

    def save_boxes(image_id: int, boxes: list, revision: int = -1) -> dict:
        def work(session):
            record = store.save_boxes(session, int(image_id), boxes, None if revision < 0 else int(revision))
            return {"boxes": len(record.boxes), "revision": record.revision}
        return _call(ctx, work)

    def tune(project_id: int, method: str = DEFAULT_METHOD, steps: int = DEFAULT_STEPS,
             continue_from_latest: bool = False) -> dict:
        def work(session):
            warm = store.latest_prompt(session, int(project_id), ctx.models.fingerprint()) if continue_from_latest \
                else None
            if continue_from_latest and warm is None:
                raise store.StoreError("this project has no prompt for this model to continue from; tune anew")
            return {"job_id": store.enqueue_job(session, int(project_id), method, int(steps), ctx.models.model_id,
                                                warm_from=warm.id if warm else None).id}
        return _call(ctx, work)

    def job_status(job_id: int) -> dict:
        def work(session):
            job = store.get_job(session, int(job_id))
            return {"status": job.status, "step": job.step, "steps": job.steps, "loss": job.loss,
                    "message": job.message, "kind": job.kind}
        return _call(ctx, work)

    def cancel_job(job_id: int) -> dict:
        return _call(ctx, lambda s: {"status": store.request_cancel(s, int(job_id)).status})

    for fn in (create_project, add_class, add_image, get_boxes, save_boxes, tune, job_status, cancel_job):
        gr.api(fn, api_name=fn.__name__, queue=False)
