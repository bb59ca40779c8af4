"""The labelling loop's gradio_client endpoints: the example project, pre-annotate all, the review queue, review,
and the learning curve. Every endpoint goes through `app.suggestions` with a project or image id."""
from __future__ import annotations

import gradio as gr

from app import store, suggestions
from app.context import AppContext
from app.example import create_example_project as make_example
from app.ui.api import _call


def register(ctx: AppContext) -> None:
    """Add the endpoints to the Blocks being built (call inside `with gr.Blocks()`)."""

    def create_example_project() -> dict:
        return _call(ctx, lambda s: {"id": make_example(s, ctx.settings).id})

    def preannotate_all(project_id: int, prompt_id: int = -1, threshold: float = 0.3) -> dict:
        """prompt_id: -1 = the latest prompt, 0 = zero-shot, else a prompt of the project."""
        return _call(ctx, lambda s: {"job_id": suggestions.enqueue_preannotate(
            s, int(project_id), int(prompt_id), float(threshold), ctx.models.model_id, ctx.models.fingerprint()).id})

    def next_to_review(project_id: int) -> dict:
        return _call(ctx, lambda s: {"image_id": suggestions.next_to_review(s, int(project_id))})

    def suggestions_(image_id: int) -> dict:
        def work(session):
            boxes = [{key: box[key] for key in ("id", "label", "xmin", "ymin", "xmax", "ymax", "score")}
                     for box in suggestions.suggestions_of(session, int(image_id))]
            return {"boxes": boxes, "revision": store.get_image(session, int(image_id)).revision}
        return _call(ctx, work)

    def review(image_id: int, accept: list, reject: list, revision: int = -1) -> dict:
        def work(session):
            result = suggestions.review(session, int(image_id), list(accept or []), list(reject or []),
                                        int(revision))
            return {key: result[key] for key in ("confirmed", "suggested", "revision")}
        return _call(ctx, work)

    def learning_curve(project_id: int) -> dict:
        return _call(ctx, lambda s: {"points": suggestions.learning_curve(s, int(project_id))})

    for fn, name in ((create_example_project, "create_example_project"), (preannotate_all, "preannotate_all"),
                     (next_to_review, "next_to_review"), (suggestions_, "suggestions"), (review, "review"),
                     (learning_curve, "learning_curve")):
        gr.api(fn, api_name=name, queue=False)
