"""The labelling loop's gradio_client endpoints: the example project, pre-annotate all, the review queue, review,
and the learning curve. Each runs as the signed-in user through app/access.py's check (read to look, write to
change or queue); ids in results are named `<thing>_id`, with the names issue 17 gave them kept alongside."""
from __future__ import annotations

import gradio as gr

from app import access, store, suggestions
from app.context import AppContext
from app.example import create_example_project as make_example
from app.ui import payloads
from app.ui.api import _call


def _ids(value, endpoint: str, name: str) -> list:
    """A list of suggestion ids (or, for accept, {id, xmin, ymin, xmax, ymax[, label]} dicts for edited ones)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise payloads.PayloadError(f"{endpoint}: {name} must be a list of suggestion ids, not "
                                    f"{type(value).__name__} {value!r:.60}; {endpoint} takes "
                                    f"{payloads.SHAPES[endpoint]}")
    return value


def _number(value, endpoint: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise payloads.PayloadError(f"{endpoint}: {name} must be a number, not {type(value).__name__} "
                                    f"{value!r:.60}; {endpoint} takes {payloads.SHAPES[endpoint]}")
    return float(value)


def register(ctx: AppContext) -> None:
    """Add the endpoints to the Blocks being built (call inside `with gr.Blocks()`)."""

    def create_example_project(request: gr.Request) -> dict:
        """A new example project owned by the caller: {project_id, id}."""
        def work(session, user):
            if user is None:
                raise access.AccessDenied("sign in first: projects belong to the user who creates them")
            project = make_example(session, ctx.settings, owner=user.name)
            return {"project_id": project.id, "id": project.id}
        return _call(ctx, request, "/create_example_project", work)

    def preannotate_all(request: gr.Request, project_id: int, prompt_id: int = -1, threshold: float = 0.3) -> dict:
        """prompt_id: -1 = the latest prompt, 0 = zero-shot, else a prompt of the project."""
        def work(session, user):
            number = payloads.whole(project_id, "/preannotate_all", "project_id")
            prompt = payloads.whole(prompt_id, "/preannotate_all", "prompt_id")
            limit = _number(threshold, "/preannotate_all", "threshold")
            # resolve_prompt refuses a prompt of any other project, so the project check covers prompt_id too
            access.require(session, user, "write", project_id=number)
            job = suggestions.enqueue_preannotate(session, number, prompt, limit, ctx.models.model_id,
                                                  ctx.models.fingerprint())
            return {"job_id": job.id}
        return _call(ctx, request, "/preannotate_all", work)

    def next_to_review(request: gr.Request, project_id: int) -> dict:
        """{image_id}: the image whose review helps most now, null when none is left."""
        def work(session, user):
            number = payloads.whole(project_id, "/next_to_review", "project_id")
            access.require(session, user, "read", project_id=number)
            return {"image_id": suggestions.next_to_review(session, number)}
        return _call(ctx, request, "/next_to_review", work)

    def suggestions_(request: gr.Request, image_id: int) -> dict:
        """{boxes: [{suggestion_id, id, label, xmin, ymin, xmax, ymax, score}], revision}."""
        def work(session, user):
            number = payloads.whole(image_id, "/suggestions", "image_id")
            access.require(session, user, "read", image_id=number)
            boxes = [{"suggestion_id": box["id"],
                      **{key: box[key] for key in ("id", "label", "xmin", "ymin", "xmax", "ymax", "score")}}
                     for box in suggestions.suggestions_of(session, number)]
            return {"boxes": boxes, "revision": store.get_image(session, number).revision}
        return _call(ctx, request, "/suggestions", work)

    def review(request: gr.Request, image_id: int, accept: list, reject: list, revision: int = -1) -> dict:
        """Accept and reject suggestions of one image (all or nothing): {image_id, confirmed, suggested, revision}."""
        def work(session, user):
            number = payloads.whole(image_id, "/review", "image_id")
            accepted = _ids(accept, "/review", "accept")
            rejected = _ids(reject, "/review", "reject")
            expected = payloads.whole(revision, "/review", "revision")
            # the suggestion ids are checked against this image by suggestions.review, so one image check covers
            # them: an id of another image (or project) is refused as "not on this image"
            access.require(session, user, "write", image_id=number)
            result = suggestions.review(session, number, accepted, rejected, expected)
            return {"image_id": number, **{key: result[key] for key in ("confirmed", "suggested", "revision")}}
        return _call(ctx, request, "/review", work)

    def learning_curve(request: gr.Request, project_id: int) -> dict:
        """{points: [{prompt_id, confirmed_boxes, map, map50}]}: held-out mAP per prompt version."""
        def work(session, user):
            number = payloads.whole(project_id, "/learning_curve", "project_id")
            access.require(session, user, "read", project_id=number)
            return {"points": suggestions.learning_curve(session, number)}
        return _call(ctx, request, "/learning_curve", work)

    for fn, name in ((create_example_project, "create_example_project"), (preannotate_all, "preannotate_all"),
                     (next_to_review, "next_to_review"), (suggestions_, "suggestions"), (review, "review"),
                     (learning_curve, "learning_curve")):
        gr.api(fn, api_name=name, queue=False)
