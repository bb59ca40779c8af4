"""What the page shows for a project: the updates of the project-level outputs when the project changes (classes,
pickers, annotator, jobs, sharing), the compare tab's pickers, and the signed-in line."""
from __future__ import annotations

import gradio as gr
from gradio_image_annotation import image_annotator

from app.context import AppContext
from app.ui import compare, labelling, projects, tuning


def signed_in_line(ctx: AppContext) -> str:
    user = ctx.signed_in_user()
    if ctx.settings.sign_in == "none":
        return ""
    if user is None:
        return "Not signed in: sign in to see your projects."
    return f"Signed in as **{user.name}**"


def refresh_project(ctx, project_id, image_id=None):
    labels, colours = projects.labels_and_colours(ctx, project_id)
    images = labelling.image_choices(ctx, project_id)
    ids = [value for _, value in images]
    chosen = image_id if image_id in ids else (ids[0] if ids else None)
    jobs = tuning.job_choices(ctx, project_id)
    return (projects.class_rows(ctx, project_id), gr.Dropdown(choices=projects.class_choices(ctx, project_id),
                                                              value=None),
            image_annotator(label_list=labels, label_colors=colours),
            gr.Dropdown(choices=images, value=chosen),
            gr.Dropdown(choices=jobs, value=jobs[0][1] if jobs else None),
            projects.sharing_summary(ctx, project_id), *refresh_compare(ctx, project_id))


def refresh_compare(ctx, project_id, image_id=None):
    prompts = compare.prompt_choices(ctx, project_id)
    images = labelling.image_choices(ctx, project_id)
    ids = [value for _, value in images]
    labels, _ = projects.labels_and_colours(ctx, project_id)
    return (gr.Dropdown(choices=prompts, value=prompts[0][1] if prompts else None),
            gr.Dropdown(choices=images, value=image_id if image_id in ids else (ids[0] if ids else None)),
            gr.Dropdown(choices=labels, value=labels[0] if labels else None))
