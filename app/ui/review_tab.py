"""The Review tab's components and wiring (pre-annotate all, counts, the review editor), and the example-project
button and description on the first page; built inside layout's Blocks. Every handler is registered through
`signed_in` and so runs as the request's user, whom the app/ui/review.py handlers check with app/access.py."""
from __future__ import annotations

import gradio as gr
from gradio_image_annotation import image_annotator

from app.context import AppContext
from app.example import create_example_project
from app import access
from app.ui import projects, review
from app.ui.messages import from_error, ok
from app.ui.signed_in import signed_in

PRIVATE = {"api_visibility": "private"}


def description_markdown(ctx: AppContext, project_id: int | None) -> str:
    if project_id is None:
        return ""
    from app import store

    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "read", project_id=project_id)
            return store.get_project(session, project_id).description or ""
    except Exception:  # deleted in another tab, or not readable: the project picker says so
        return ""


def build_example_button(ctx: AppContext, project, status) -> gr.Button:
    """'Try the example project' on the first page: one click makes it and opens it. Starts disabled: the page load
    enables it (app/ui/layout.py says why)."""
    button = gr.Button("Try the example project (made on this machine in seconds)", elem_id="create-example",
                       interactive=False)

    def on_click(ctx):
        try:
            user = ctx.signed_in_user()
            if user is None:
                raise access.AccessDenied("sign in first: projects belong to the user who creates them")
            with ctx.database.session() as session:
                project_id = create_example_project(session, ctx.settings, owner=user.name).id
        except Exception as error:
            return from_error(error), gr.skip()
        return (ok("created the example project; its description below says what to do next"),
                gr.Dropdown(choices=projects.project_choices(ctx), value=project_id))
    button.click(signed_in(ctx, on_click), None, [status, project], **PRIVATE)
    return button


def build_description(ctx: AppContext, project, project_changed, demo) -> None:
    shown = gr.Markdown("", elem_id="project-description")
    project_changed.add(description_markdown, [project], [shown])
    demo.load(signed_in(ctx, description_markdown), [project], [shown], **PRIVATE)


def build_review_tab(ctx: AppContext, project, project_changed, status) -> None:
    """Call inside `with gr.Tabs()`. What the tab shows for a newly chosen project goes through `project_changed`
    (app/ui/change_events.py)."""
    with gr.Tab("2b · Review", id="review"):
        counts = gr.Markdown("", elem_id="review-counts")
        with gr.Row():
            source = gr.Radio(["latest prompt", "zero-shot"], value="latest prompt", label="Suggest with")
            threshold = gr.Slider(0.05, 0.95, value=0.3, step=0.05, label="Score threshold")
            start_button = gr.Button("Pre-annotate all", variant="primary", elem_id="preannotate-all")
            cancel_button = gr.Button("Cancel pre-annotation", elem_id="cancel-preannotate")
        job = gr.State(None)
        progress = gr.Markdown("", elem_id="preannotate-progress")
        gr.Markdown(review.REVIEW_HELP)
        with gr.Row():
            next_button = gr.Button("Next to review (R)", variant="primary", elem_id="review-next")
            accept_all = gr.Button("Accept all (A)", elem_id="review-accept-all")
            accept_one = gr.Button("Accept highlighted (Y)", elem_id="review-accept-one")
            reject_one = gr.Button("Reject highlighted (X)", elem_id="review-reject-one")
            accept_edited = gr.Button("Accept as edited (V)", elem_id="review-accept-edited")
        image = gr.State(None)
        revision = gr.State(-1)
        info = gr.Markdown("No image open: press **Next to review (R)**.", elem_id="review-info")
        editor = image_annotator(label="Review", image_type="filepath", use_default_label=True, sources=None,
                                 show_clear_button=False, show_remove_button=False, show_share_button=False,
                                 height=520, elem_id="review-annotator")
        timer = gr.Timer(1.0)

    def show(ctx, image_id):
        value, rev, text = review.editor_value(ctx, image_id)
        return value, rev, text

    def on_project(ctx, project_id):
        try:
            labels, colours = projects.labels_and_colours(ctx, project_id)
        except Exception:  # not readable by this user: the project picker's own handler says why
            labels, colours = [], []
        return (review.counts_markdown(ctx, project_id), None, None, -1, "No image open: press **Next to review "
                "(R)**.", image_annotator(value=None, label_list=labels, label_colors=colours))
    project_changed.add(on_project, [project], [counts, job, image, revision, info, editor])

    def on_start(ctx, project_id, chosen, score):
        job_id, message = review.start_preannotate(ctx, project_id, chosen, score)
        return message, job_id or gr.skip(), review.job_markdown(ctx, job_id)
    start_button.click(signed_in(ctx, on_start), [project, source, threshold], [status, job, progress], **PRIVATE)
    cancel_button.click(signed_in(ctx, review.cancel), [job], [status], **PRIVATE)

    def on_tick(ctx, project_id, job_id, shown_counts, shown_progress):
        text, jobs = review.counts_markdown(ctx, project_id), review.job_markdown(ctx, job_id)
        return (text if text != shown_counts else gr.skip(), jobs if jobs != shown_progress else gr.skip())
    timer.tick(signed_in(ctx, on_tick), [project, job, counts, progress], [counts, progress], show_progress="hidden",
               **PRIVATE)

    def on_next(ctx, project_id, current):
        found, message = review.next_image(ctx, project_id, current)
        return (message, found, *show(ctx, found), review.counts_markdown(ctx, project_id))
    next_button.click(signed_in(ctx, on_next), [project, image], [status, image, editor, revision, info, counts],
                      **PRIVATE)

    def after(ctx, message, project_id, image_id):
        if message.startswith("**Problem:**"):  # keep what is on screen (e.g. edits refused as stale) unchanged
            return message, gr.skip(), gr.skip(), gr.skip(), review.counts_markdown(ctx, project_id)
        return (message, *show(ctx, image_id), review.counts_markdown(ctx, project_id))
    outputs = [status, editor, revision, info, counts]
    for button, action in ((accept_all, "all"), (accept_one, "one"), (reject_one, "reject")):
        button.click(signed_in(ctx, lambda c, p, i, r, a=action: after(c, review.act(c, i, r, a), p, i)),
                     [project, image, revision], outputs, **PRIVATE)
    accept_edited.click(signed_in(ctx, lambda c, p, i, r, v: after(c, review.accept_edited(c, i, r, v), p, i)),
                        [project, image, revision, editor], outputs, **PRIVATE)
