"""The app's programmatic API (for gradio_client and scripts): JSON in, JSON out, user errors as gr.Error.

Every call runs as the signed-in user of its request and passes app/access.py's check. Ids in results are named
`<thing>_id` (project_id, class_id, image_id, job_id); the older plain `id` key is kept until the next release.
A payload of the wrong shape is answered with what it must look like (app/ui/payloads.py).
"""
from __future__ import annotations

import logging

import gradio as gr

from app import access, store
from app.context import AppContext
from app.image_files import ImageRejected, store_upload
from app.ui import payloads

logger = logging.getLogger(__name__)
from app.settings import DEFAULT_METHOD, DEFAULT_STEPS


def _call(ctx: AppContext, request: gr.Request, endpoint: str, work):
    """Run `work(session, user)` in one transaction; refusals and malformed payloads become gr.Error."""
    user = ctx.for_request(request).signed_in_user()
    try:
        with ctx.database.session() as session:
            return work(session, user)
    except (store.StoreError, ImageRejected) as error:
        # a refusal of user input is one line at INFO, not a traceback (those are for bugs)
        logger.info("%s refused: %s", endpoint, error)
        raise gr.Error(str(error), print_exception=False) from error
    except (TypeError, ValueError, AttributeError, KeyError) as error:  # a payload our checks did not foresee
        logger.info("malformed %s payload: %r", endpoint, error)
        raise gr.Error(f"{endpoint} could not read its arguments ({type(error).__name__}: {error}); it takes "
                       f"{payloads.SHAPES[endpoint]}", print_exception=False) from error


def register(ctx: AppContext) -> None:
    """Add the API endpoints to the Blocks being built (call inside `with gr.Blocks()`)."""

    def list_projects(request: gr.Request) -> dict:
        """The projects you may read: [{project_id, name, owner, role}]."""
        def work(session, user):
            return {"projects": [{"project_id": p.id, "name": p.name, "owner": p.owner, "role": role}
                                 for p, role in access.visible_projects(session, user)]}
        return _call(ctx, request, "/list_projects", work)

    def create_project(request: gr.Request, name: str) -> dict:
        def work(session, user):
            if user is None:
                raise access.AccessDenied("sign in first: projects belong to the user who creates them")
            project = store.create_project(session, payloads.text(name, "/create_project", "name"), owner=user.name)
            return {"project_id": project.id, "id": project.id}
        return _call(ctx, request, "/create_project", work)

    def share_project(request: gr.Request, project_id: int, user_name: str, role: str = "viewer") -> dict:
        """Owner only: role "viewer", "editor" or "remove"."""
        def work(session, user):
            number = payloads.whole(project_id, "/share_project", "project_id")
            wanted = payloads.text(role, "/share_project", "role")
            message = access.share(session, user, number, payloads.text(user_name, "/share_project", "user_name"),
                                   None if wanted == "remove" else wanted)
            return {"project_id": number, "message": message}
        return _call(ctx, request, "/share_project", work)

    def add_class(request: gr.Request, project_id: int, name: str) -> dict:
        def work(session, user):
            number = payloads.whole(project_id, "/add_class", "project_id")
            access.require(session, user, "write", project_id=number)
            label = store.add_class(session, number, payloads.text(name, "/add_class", "name"))
            return {"class_id": label.id, "id": label.id}
        return _call(ctx, request, "/add_class", work)

    def add_image(request: gr.Request, project_id: int, file: gr.FileData, split: str = "train") -> dict:
        def work(session, user):
            number = payloads.whole(project_id, "/add_image", "project_id")
            access.require(session, user, "write", project_id=number)  # before the file is stored
            chosen = store.check_split(payloads.text(split, "/add_image", "split"))  # before it too: nothing stray
            upload = payloads.file(file, "/add_image")
            ctx.for_request(request).check_upload(upload["path"])  # only a file this user uploaded
            stored = store_upload(upload["path"], ctx.settings.images_dir, ctx.settings.max_upload_mb * 2**20,
                                  original_name=upload.get("orig_name"))
            record, new = store.add_image(session, number, stored, chosen)
            return {"image_id": record.id, "id": record.id, "new": new, "width": record.width,
                    "height": record.height, "revision": record.revision}
        return _call(ctx, request, "/add_image", work)

    def list_images(request: gr.Request, project_id: int) -> dict:
        """The project's images: [{image_id, name, split, boxes, revision}]."""
        def work(session, user):
            number = payloads.whole(project_id, "/list_images", "project_id")
            access.require(session, user, "read", project_id=number)
            return {"images": [{"image_id": i.id, "name": i.original_name, "split": i.split, "boxes": len(i.boxes),
                                "revision": i.revision} for i in store.list_images(session, number)]}
        return _call(ctx, request, "/list_images", work)

    def get_boxes(request: gr.Request, image_id: int) -> dict:
        def work(session, user):
            number = payloads.whole(image_id, "/get_boxes", "image_id")
            access.require(session, user, "read", image_id=number)
            record = store.get_image(session, number)
            return {"boxes": store.boxes_of(record), "revision": record.revision, "split": record.split}
        return _call(ctx, request, "/get_boxes", work)

    def save_boxes(request: gr.Request, image_id: int, boxes: list, revision: int = -1) -> dict:
        def work(session, user):
            number = payloads.whole(image_id, "/save_boxes", "image_id")
            rows = payloads.boxes(boxes)
            expected = payloads.whole(revision, "/save_boxes", "revision")
            access.require(session, user, "write", image_id=number)
            record = store.save_boxes(session, number, rows, None if expected < 0 else expected)
            return {"boxes": len(record.boxes), "revision": record.revision}
        return _call(ctx, request, "/save_boxes", work)

    def tune(request: gr.Request, project_id: int, method: str = DEFAULT_METHOD, steps: int = DEFAULT_STEPS,
             continue_from_latest: bool = False) -> dict:
        """Queue a tuning job; continue_from_latest warm-starts from the project's latest prompt for this model."""
        def work(session, user):
            number = payloads.whole(project_id, "/tune", "project_id")
            access.require(session, user, "write", project_id=number)
            warm = store.latest_prompt(session, number, ctx.models.fingerprint()) if continue_from_latest else None
            if continue_from_latest and warm is None:
                raise store.StoreError("this project has no prompt for this model to continue from; tune anew")
            job = store.enqueue_job(session, number, payloads.text(method, "/tune", "method"),
                                    payloads.whole(steps, "/tune", "steps"), ctx.models.model_id,
                                    warm_from=warm.id if warm else None)
            return {"job_id": job.id}
        return _call(ctx, request, "/tune", work)

    def job_status(request: gr.Request, job_id: int) -> dict:
        def work(session, user):
            number = payloads.whole(job_id, "/job_status", "job_id")
            access.require(session, user, "read", job_id=number)
            job = store.current_job(session, number, ctx.settings.stale_after_s)
            return {"status": job.status, "step": job.step, "steps": job.steps, "loss": job.loss,
                    "message": job.message, "kind": job.kind}
        return _call(ctx, request, "/job_status", work)

    def cancel_job(request: gr.Request, job_id: int) -> dict:
        def work(session, user):
            number = payloads.whole(job_id, "/cancel_job", "job_id")
            access.require(session, user, "write", job_id=number)
            job = store.request_cancel(session, number)
            # a running job stops at its next step: say so, rather than "running"
            return {"status": "cancelling" if job.status == "running" else job.status, "message": job.message}
        return _call(ctx, request, "/cancel_job", work)

    for fn in (list_projects, create_project, share_project, add_class, add_image, list_images, get_boxes,
               save_boxes, tune, job_status, cancel_job):
        gr.api(fn, api_name=fn.__name__, queue=False)
