"""The Tune tab's learning curve: held-out mAP of each prompt (as routed, the number the job's message and the
Evaluate tab give too) against its version and its confirmed boxes, with the zero-shot model on the same images as
a reference line, so a prompt below zero-shot reads as a loss (read access to the project, app/access.py)."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from app import access, suggestions
from app.context import AppContext
from app.ui.signed_in import signed_in

COLUMNS = ["prompt version", "prompt id", "confirmed boxes", "held-out mAP", "held-out mAP@.5", "zero-shot mAP"]


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
    rows = [[k, p["prompt_id"], p["confirmed_boxes"] or 0, p["map"], p["map50"], p.get("zero_shot_map")]
            for k, p in enumerate(found, 1)]
    return pd.DataFrame(rows, columns=COLUMNS).astype({"prompt version": "int64", "prompt id": "int64",
                                                      "confirmed boxes": "int64", "held-out mAP": "float64",
                                                      "held-out mAP@.5": "float64", "zero-shot mAP": "float64"})


def figure(found: list[dict]):
    """Two panels (by prompt version, by confirmed boxes): the prompts' held-out mAP as points joined by a line
    (one point still shows), the zero-shot model's as a dashed line, and the y axis from 0 so a fall reads as one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    zero = [p.get("zero_shot_map") for p in found if p.get("zero_shot_map") is not None]
    top = max([p["map"] for p in found] + zero + [0.05])
    for axis, key, label in ((axes[0], None, "prompt version"), (axes[1], "confirmed_boxes", "confirmed boxes")):
        xs = [k for k, _ in enumerate(found, 1)] if key is None else [p[key] or 0 for p in found]
        axis.plot(xs, [p["map"] for p in found], marker="o", color="tab:blue", label="prompt (as routed)")
        if zero:  # the reference: the latest zero-shot figure (held-out images can grow between prompts)
            axis.axhline(zero[-1], color="tab:grey", linestyle="--", label=f"zero-shot {zero[-1]:.3f}")
        axis.set_ylim(0, top * 1.15)
        axis.set_xlabel(label)
        axis.set_ylabel("held-out mAP")
        if not found:
            axis.text(0.5, 0.5, "no scored prompt yet", ha="center", va="center", transform=axis.transAxes)
        elif key is None:
            axis.set_xticks(xs)
        axis.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def build(ctx: AppContext, project, timer) -> None:
    """Call inside the Tune tab: two plots and a table, refreshed by the tab's timer when a job adds a point or another
    project is chosen. Not by the project picker's change listener: drawing the plot there would hold the new
    project's whole refresh back, and widen the window in which an older refresh lands after a newer one."""
    gr.Markdown("### Learning curve: each new prompt scored on the held-out images\n"
                "Blue: the prompt, each class answered by the model its route names (5 · Evaluate lists the routes); "
                "dashed: the zero-shot model on the same images. The held-out images also chose the routes and the "
                "step kept, so the blue points are a little optimistic; a point below the dashed line is a loss.")
    plot = gr.Plot(figure([]), label="Held-out mAP by prompt version and by confirmed boxes", elem_id="curve-plot")
    table = gr.Dataframe(frame([]), interactive=False, elem_id="learning-curve")
    shown = gr.State(None)

    def refresh(ctx, project_id, before):
        found = points(ctx, project_id)
        if found == before:
            return gr.skip(), gr.skip(), gr.skip()
        return figure(found), frame(found), found
    outputs = [plot, table, shown]
    timer.tick(signed_in(ctx, refresh), [project, shown], outputs, api_visibility="private", show_progress="hidden")
