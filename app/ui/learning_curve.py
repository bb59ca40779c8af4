"""The Tune tab's learning curve: held-out mAP of each prompt against its version and its confirmed boxes (read
access to the project, app/access.py)."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from app import access, suggestions
from app.context import AppContext
from app.ui.signed_in import signed_in

COLUMNS = ["prompt version", "prompt id", "confirmed boxes", "held-out mAP", "held-out mAP@.5"]


def points(ctx: AppContext, project_id: int | None) -> list[dict]:
    if project_id is None:
        return []
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "read", project_id=project_id)
            return suggestions.learning_curve(session, project_id)
    except Exception:  # deleted in another tab, or not readable by this user: nothing to plot
        return []


def frame(found: list[dict]) -> pd.DataFrame:
    rows = [[k, p["prompt_id"], p["confirmed_boxes"] or 0, p["map"], p["map50"]] for k, p in enumerate(found, 1)]
    return pd.DataFrame(rows, columns=COLUMNS).astype({"prompt version": "int64", "prompt id": "int64",
                                                      "confirmed boxes": "int64", "held-out mAP": "float64",
                                                      "held-out mAP@.5": "float64"})


def build(ctx: AppContext, project, timer) -> None:
    """Call inside the Tune tab: two plots and a table, refreshed when a job adds a point."""
    gr.Markdown("### Learning curve: each new prompt scored on the held-out images")
    with gr.Row():
        by_version = gr.LinePlot(frame([]), x="prompt version", y="held-out mAP", title="Held-out mAP by prompt "
                                 "version", height=240, elem_id="curve-by-version")
        by_boxes = gr.LinePlot(frame([]), x="confirmed boxes", y="held-out mAP", title="Held-out mAP by confirmed "
                               "boxes", height=240, elem_id="curve-by-boxes")
    table = gr.Dataframe(frame([]), interactive=False, elem_id="learning-curve")
    shown = gr.State(None)

    def refresh(ctx, project_id, before):
        found = points(ctx, project_id)
        if found == before:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        data = frame(found)
        return data, data, data, found
    outputs = [by_version, by_boxes, table, shown]
    project.change(signed_in(ctx, refresh), [project, gr.State(None)], outputs, api_visibility="private")
    timer.tick(signed_in(ctx, refresh), [project, shown], outputs, api_visibility="private", show_progress="hidden")
