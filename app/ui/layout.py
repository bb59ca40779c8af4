"""The app's one gr.Blocks: a project picker, the tabs (classes, labelling, review, tuning, compare, evaluate,
exchange) and a status bar."""
from __future__ import annotations

import gradio as gr
import pandas as pd
from gradio_image_annotation import image_annotator

from app.context import AppContext
from app.ui.messages import from_error as from_error_text
from app.settings import DEFAULT_METHOD, DEFAULT_STEPS
from app.ui import api, compare, evaluation, exchange_tab, labelling, learning_curve, loop_api, projects, review_tab, \
    tuning
from app.ui.page_text import EXPOSED_WARNING, INTRO, LABEL_HELP
from app.ui.change_events import OneChangeListener
from app.ui.project_view import refresh_compare, refresh_project, signed_in_line
from app.ui.signed_in import signed_in


def _loss_frame(points: list[list]) -> pd.DataFrame:
    # explicit dtypes: an empty frame would otherwise be typed 'object' and the axes drawn as categories
    return pd.DataFrame(points or [], columns=["step", "loss"]).astype({"step": "int64", "loss": "float64"})


def build_ui(ctx: AppContext) -> gr.Blocks:
    with gr.Blocks(title="SDPT: tune a detector on your objects") as demo:
        gr.Markdown(INTRO)
        gr.Markdown(ctx.models.note, elem_id="model-note")
        if ctx.settings.exposed_without_sign_in:
            gr.Markdown(f"**Warning:** {EXPOSED_WARNING}", elem_id="exposed-warning")
        with gr.Row():
            who = gr.Markdown("", elem_id="signed-in-as")
            if ctx.settings.sign_in == "oauth":
                gr.LoginButton()
            elif ctx.settings.sign_in == "password":
                gr.Button("Sign out", link="/logout", scale=0, elem_id="sign-out")
        status = gr.Markdown("", elem_id="status")
        first = projects.project_choices(ctx)
        # The project picker and the buttons that change the project list start disabled; the page load enables
        # them once it has set the list. Otherwise a project made before a slow page load answers is undone by
        # that answer's older list (seen under load: the new project vanished from the picker).
        project = gr.Dropdown(label="Project", choices=first, value=first[0][1] if first else None,
                              elem_id="project", interactive=False)
        project_changed = OneChangeListener(project)  # every part of the page that follows the project adds to it
        review_tab.build_description(ctx, project, project_changed, demo)
        with gr.Tabs() as tabs:
            with gr.Tab("1 · Project and classes", id="projects"):
                example_button = review_tab.build_example_button(ctx, project, status)
                with gr.Row():
                    new_project = gr.Textbox(label="New project", placeholder="e.g. blood cells", elem_id="new-project")
                    create_button = gr.Button("Create project", variant="primary", elem_id="create-project",
                                              interactive=False)
                with gr.Row():
                    rename_text = gr.Textbox(label="Rename the project to")
                    rename_button = gr.Button("Rename", interactive=False)
                    delete_confirm = gr.Checkbox(label="yes, delete it", value=False)
                    delete_button = gr.Button("Delete project", variant="stop", interactive=False)
                sharing = gr.Markdown("", elem_id="sharing")
                with gr.Row(visible=ctx.settings.sign_in != "none"):
                    share_user = gr.Textbox(label="Share with (user name)", elem_id="share-user")
                    share_role = gr.Radio(["viewer", "editor", "remove"], value="viewer", label="as",
                                          elem_id="share-role")
                    share_button = gr.Button("Share", elem_id="share-project")
                gr.Markdown("### Classes: the things to detect, named the way you would describe them")
                classes_table = gr.Dataframe(headers=["class", "colour", "boxes"], interactive=False,
                                             elem_id="classes-table")
                with gr.Row():
                    new_classes = gr.Textbox(label="Add classes (several: separate with commas)",
                                             placeholder="e.g. red blood cell, platelet", elem_id="new-classes")
                    new_colour = gr.ColorPicker(label="Colour (optional)", value=None)
                    add_class_button = gr.Button("Add", elem_id="add-classes")
                with gr.Row():
                    class_pick = gr.Dropdown(label="Class", choices=[], interactive=True)
                    class_name = gr.Textbox(label="New name")
                    rename_class_button = gr.Button("Rename class")
                    class_colour = gr.ColorPicker(label="New colour")
                    recolour_button = gr.Button("Set colour")
                    delete_class_confirm = gr.Checkbox(label="yes, delete it", value=False)
                    delete_class_button = gr.Button("Delete class", variant="stop")
            with gr.Tab("2 · Label images", id="label"):
                with gr.Row():
                    uploads = gr.File(label=f"Upload images (PNG, JPEG, WebP, BMP, TIFF; up to "
                                            f"{ctx.settings.max_upload_mb} MB each)", file_count="multiple",
                                      file_types=["image"], elem_id="uploads")
                    with gr.Column():
                        upload_split = gr.Radio(["train", "heldout"], value="train", label="Add as")
                        upload_button = gr.Button("Add images", variant="primary", elem_id="add-images")
                with gr.Row():
                    prev_button = gr.Button("◀ Previous", elem_id="prev-image", scale=0)
                    # allow_custom_value: see job_pick below
                    image_pick = gr.Dropdown(label="Image", choices=[], interactive=True, elem_id="image-pick",
                                             allow_custom_value=True)
                    next_button = gr.Button("Next ▶", elem_id="next-image", scale=0)
                image_info = gr.Markdown("", elem_id="image-info")
                gr.Markdown(LABEL_HELP)
                annotator = image_annotator(label="Boxes", image_type="filepath", use_default_label=True,
                                            sources=None, show_clear_button=False, show_remove_button=False,
                                            show_share_button=False, height=520, elem_id="annotator")
                revision = gr.State(-1)
                with gr.Row():
                    save_button = gr.Button("Save boxes (S)", variant="primary", elem_id="save-boxes")
                    split = gr.Radio(["train", "heldout"], value="train", label="This image is for",
                                     elem_id="image-split")
                    delete_image_button = gr.Button("Remove image", variant="stop")
                with gr.Row():
                    pre_source = gr.Radio(["zero-shot", "latest prompt"], value="zero-shot", label="Pre-annotate with")
                    pre_threshold = gr.Slider(0.05, 0.95, value=0.3, step=0.05, label="Score threshold")
                    pre_button = gr.Button("Pre-annotate", elem_id="preannotate")
            review_tab.build_review_tab(ctx, project, project_changed, status)
            with gr.Tab("3 · Tune", id="tune"):
                with gr.Row():
                    method = gr.Dropdown(label="Method", choices=tuning.method_choices(ctx.models.detector.host),
                                         value=DEFAULT_METHOD)
                    steps = gr.Number(label="Steps", value=DEFAULT_STEPS, precision=0, minimum=1, maximum=100000,
                                      elem_id="steps")
                    warm = gr.Checkbox(label="Continue from the latest prompt (with all confirmed boxes)", value=False,
                                       elem_id="warm-retune")
                    tune_button = gr.Button("Tune", variant="primary", elem_id="tune")
                # allow_custom_value: two events can race (a project refresh computed before a new job or image,
                # answered after it). The later one sets choices=[], and gradio ignores value=None in an update
                # (gradio-app/gradio#7859), so the picker kept a value outside its choices and every later event
                # that read it failed ("Value: 1 is not in the list of choices: []"): the progress never updated.
                # Handlers check every id they get (access check, clear message), so a value outside the list is safe.
                job_pick = gr.Dropdown(label="Job", choices=[], interactive=True, elem_id="job-pick",
                                       allow_custom_value=True)
                progress = gr.Markdown(tuning.job_view(ctx, None)[0], elem_id="job-progress")
                loss_plot = gr.LinePlot(_loss_frame([]), x="step", y="loss", title="Tuning loss", height=260)
                with gr.Row():
                    cancel_button = gr.Button("Cancel job", elem_id="cancel-job")
                    retry_button = gr.Button("Run again", elem_id="retry-job")
                timer = gr.Timer(1.0)
                learning_curve.build(ctx, project, timer)
            with gr.Tab("4 · Compare and explain", id="compare") as compare_tab:
                prompt_pick = gr.Dropdown(label="Prompt", choices=[], interactive=True, elem_id="prompt-pick")
                with gr.Row():
                    compare_image = gr.Dropdown(label="Project image", choices=[], interactive=True,
                                                elem_id="compare-image")
                    compare_upload = gr.Image(label="...or a new image (not stored)", type="filepath",
                                              sources=["upload"], height=160, elem_id="compare-upload")
                    with gr.Column():
                        compare_threshold = gr.Slider(0.05, 0.95, value=0.3, step=0.05, label="Score threshold")
                        compare_button = gr.Button("Compare", variant="primary", elem_id="compare")
                with gr.Row():
                    zero_view = gr.Image(label="Zero-shot", interactive=False, elem_id="zero-shot-view")
                    tuned_view = gr.Image(label="Prompted", interactive=False, elem_id="prompted-view")
                counts = gr.Dataframe(headers=["class", "zero-shot", "prompted"], interactive=False,
                                      elem_id="counts")
                gr.Markdown(compare.CAM_HELP)
                with gr.Row():
                    cam_class = gr.Dropdown(label="Class to explain", choices=[], interactive=True,
                                            elem_id="cam-class")
                    cam_button = gr.Button("Show heat-maps", elem_id="explain")
                with gr.Row():
                    zero_cam = gr.Image(label="Zero-shot looks here", interactive=False, elem_id="zero-shot-cam")
                    tuned_cam = gr.Image(label="Prompted looks here", interactive=False, elem_id="prompted-cam")
            with gr.Tab("5 · Evaluate", id="evaluate") as evaluate_tab:
                gr.Markdown("COCO mAP on the project's **held-out** images (mark some labelled images as held-out in "
                            "tab 2) of the zero-shot model, of the prompt with every class prompted, and of the prompt "
                            "as routed: each class answered by the model its route names (set a route by hand below). "
                            "Images are listed worst change first; click a row to open it in the comparison view.")
                gr.Markdown(evaluation.OTHER_CLASSES_NOTE, elem_id="other-classes-note")
                evaluate_button = gr.Button("Evaluate", variant="primary", elem_id="evaluate")
                evaluation_summary = gr.Markdown("", elem_id="evaluation-summary")
                per_class = gr.Dataframe(headers=evaluation.PER_CLASS_HEADERS, interactive=False,
                                         elem_id="per-class")
                with gr.Row():
                    route_class = gr.Dropdown(label="Class", choices=[], interactive=True, elem_id="route-class")
                    route_choice = gr.Radio(["prompt", "zero-shot"], value="zero-shot", label="Answered by",
                                            elem_id="route-choice")
                    route_button = gr.Button("Set route for this prompt", elem_id="set-route")
                per_image = gr.Dataframe(headers=["image id", "image", "AP50 zero-shot", "AP50 as routed", "change",
                                                  ""], interactive=False, elem_id="per-image")
            with gr.Tab("6 · Import / export", id="exchange"):
                with gr.Row():
                    with gr.Column():
                        gr.Markdown("**Project as COCO** (annotations.json + images, zipped)")
                        export_suggestions = gr.Checkbox(label="also export the model's unreviewed suggestions "
                                                         "(flagged)", value=False, elem_id="export-suggestions")
                        export_button = gr.Button("Export project", elem_id="export-project")
                        export_file = gr.File(label="Download", interactive=False, elem_id="export-file")
                        import_file = gr.File(label="Import a COCO zip into this project", file_types=[".zip"],
                                              elem_id="import-file")
                        import_button = gr.Button("Import", elem_id="import-project")
                    with gr.Column():
                        gr.Markdown("**Prompt files** (a few hundred KB; they work only with the base model they "
                                    "were tuned on)")
                        prompt_export_button = gr.Button("Download the chosen prompt (tab 4)", elem_id="export-prompt")
                        prompt_file = gr.File(label="Download", interactive=False, elem_id="prompt-file")
                        prompt_upload = gr.File(label="Load a prompt file into this project", file_types=[".zip"],
                                                elem_id="prompt-upload")
                        prompt_import_button = gr.Button("Load prompt", elem_id="import-prompt")
        api.register(ctx)
        loop_api.register(ctx)

        # ---- wiring: project level ----
        compare_outputs = [prompt_pick, compare_image, cam_class]
        project_outputs = [classes_table, class_pick, annotator, image_pick, job_pick, sharing, *compare_outputs]
        project_changed.add(refresh_project, [project], project_outputs)
        project_changed.bind(ctx, api_visibility="private")

        def on_create(ctx, name):
            new_id, message = projects.create_project(ctx, name)
            choices = projects.project_choices(ctx)
            return message, gr.Dropdown(choices=choices, value=new_id if new_id else gr.skip()), ""
        create_button.click(signed_in(ctx, on_create),
                            [new_project], [status, project, new_project], api_visibility="private")
        new_project.submit(signed_in(ctx, on_create),
                           [new_project], [status, project, new_project], api_visibility="private")

        def on_rename(ctx, project_id, name):
            message = projects.rename_project(ctx, project_id, name)
            return message, gr.Dropdown(choices=projects.project_choices(ctx), value=project_id)
        rename_button.click(signed_in(ctx, on_rename),
                            [project, rename_text], [status, project], api_visibility="private")

        def on_delete(ctx, project_id, confirmed):
            message = projects.delete_project(ctx, project_id, confirmed)
            choices = projects.project_choices(ctx)
            still = project_id in [v for _, v in choices]
            return (message, gr.Dropdown(choices=choices, value=project_id if still else
                                         (choices[0][1] if choices else None)), False)
        delete_button.click(signed_in(ctx, on_delete), [project, delete_confirm], [status, project, delete_confirm],
                            api_visibility="private")

        def on_share(ctx, project_id, other, role):
            return projects.share_project(ctx, project_id, other, role), projects.sharing_summary(ctx, project_id)
        share_button.click(signed_in(ctx, on_share), [project, share_user, share_role], [status, sharing],
                           api_visibility="private")

        # ---- classes ----
        def after_class_change(ctx, message, project_id, image_id):
            return (message, *refresh_project(ctx, project_id, image_id))

        class_outputs = [status, *project_outputs]
        add_class_button.click(signed_in(ctx, lambda ctx, p, n, c, i: (
                                   *after_class_change(ctx, projects.add_classes(ctx, p, n, c), p, i), "")),
                               [project, new_classes, new_colour, image_pick], [*class_outputs, new_classes],
                               api_visibility="private")
        new_classes.submit(signed_in(ctx, lambda ctx, p, n, c, i: (
                               *after_class_change(ctx, projects.add_classes(ctx, p, n, c), p, i), "")),
                           [project, new_classes, new_colour, image_pick], [*class_outputs, new_classes],
                           api_visibility="private")
        rename_class_button.click(signed_in(ctx, lambda ctx, p, k, n, i: after_class_change(
                                      ctx, projects.rename_class(ctx, k, n), p, i)),
                                  [project, class_pick, class_name, image_pick], class_outputs,
                                  api_visibility="private")
        recolour_button.click(signed_in(ctx, lambda ctx, p, k, c, i: after_class_change(
                                  ctx, projects.recolour_class(ctx, k, c), p, i)),
                              [project, class_pick, class_colour, image_pick], class_outputs, api_visibility="private")
        delete_class_button.click(
            signed_in(ctx, lambda ctx, p, k, ok, i: (*after_class_change(ctx, projects.delete_class(ctx, k, ok), p, i),
                                                     False)),
            [project, class_pick, delete_class_confirm, image_pick], [*class_outputs, delete_class_confirm],
            api_visibility="private")

        # ---- labelling ----
        def open_image(ctx, image_id):
            value, rev, image_split, info = labelling.editor_value(ctx, image_id)
            return value, rev, image_split, info

        image_pick.change(signed_in(ctx, open_image), [image_pick], [annotator, revision, split, image_info],
                          api_visibility="private")

        def on_upload(ctx, project_id, files, add_as):
            first_new, message = labelling.upload_images(ctx, project_id, files, add_as)
            images = labelling.image_choices(ctx, project_id)
            return message, gr.Dropdown(choices=images, value=first_new or gr.skip()), None
        upload_button.click(signed_in(ctx, on_upload), [project, uploads, upload_split], [status, image_pick, uploads],
                            api_visibility="private")

        def on_save(ctx, project_id, image_id, rev, value):
            message, new_rev = labelling.save_boxes(ctx, image_id, rev, value)
            _, _, _, info = labelling.editor_value(ctx, image_id) if image_id is not None else (None, 0, 0, "")
            return (message, new_rev, info,
                    gr.Dropdown(choices=labelling.image_choices(ctx, project_id), value=image_id))
        save_button.click(signed_in(ctx, on_save),
                          [project, image_pick, revision, annotator], [status, revision, image_info, image_pick],
                          api_visibility="private")

        def on_split(ctx, project_id, image_id, value):
            message = labelling.set_split(ctx, image_id, value)
            return message, gr.Dropdown(choices=labelling.image_choices(ctx, project_id), value=image_id)
        split.input(signed_in(ctx, on_split),
                    [project, image_pick, split], [status, image_pick], api_visibility="private")

        def on_delete_image(ctx, project_id, image_id):
            message = labelling.delete_image(ctx, image_id)
            images = labelling.image_choices(ctx, project_id)
            return message, gr.Dropdown(choices=images, value=images[0][1] if images else None)
        delete_image_button.click(signed_in(ctx, on_delete_image), [project, image_pick], [status, image_pick],
                                  api_visibility="private")
        prev_button.click(signed_in(ctx, lambda ctx, p, i: labelling.neighbour(ctx, p, i, -1)),
                          [project, image_pick], [image_pick],
                          api_visibility="private")
        next_button.click(signed_in(ctx, lambda ctx, p, i: labelling.neighbour(ctx, p, i, +1)),
                          [project, image_pick], [image_pick],
                          api_visibility="private")

        def on_preannotate(ctx, project_id, image_id, source, threshold, current):
            value, message = labelling.preannotate(ctx, project_id, image_id, source, threshold, current)
            return value, message
        pre_button.click(signed_in(ctx, on_preannotate), [project, image_pick, pre_source, pre_threshold, annotator],
                         [annotator, status], api_visibility="private")

        # ---- tuning ----
        def show_job(ctx, job_id):
            text, points = tuning.job_view(ctx, job_id)
            return text, _loss_frame(points)

        def on_tune(ctx, project_id, method_name, step_count, warm_start):
            job_id, message = tuning.start_tuning(ctx, project_id, method_name, step_count, warm_start)
            jobs = tuning.job_choices(ctx, project_id)
            return message, gr.Dropdown(choices=jobs, value=job_id or gr.skip()), *show_job(ctx, job_id)
        tune_button.click(signed_in(ctx, on_tune), [project, method, steps, warm],
                          [status, job_pick, progress, loss_plot],
                          api_visibility="private")

        def on_retry(ctx, project_id, job_id):
            new_id, message = tuning.retry_job(ctx, job_id)
            jobs = tuning.job_choices(ctx, project_id)
            return message, gr.Dropdown(choices=jobs, value=new_id or job_id)
        retry_button.click(signed_in(ctx, on_retry), [project, job_pick], [status, job_pick], api_visibility="private")
        cancel_button.click(signed_in(ctx, lambda ctx, j: tuning.cancel_job(ctx, j)),
                            [job_pick], [status], api_visibility="private")
        job_pick.change(signed_in(ctx, show_job), [job_pick], [progress, loss_plot], api_visibility="private")
        timer.tick(signed_in(ctx, show_job),
                   [job_pick], [progress, loss_plot], api_visibility="private", show_progress="hidden")

        def on_page_load(ctx, project_id):
            # choices are read per page load: projects made in other tabs (or by the API) since start-up appear
            choices = projects.project_choices(ctx)
            ids = [value for _, value in choices]
            chosen = project_id if project_id in ids else (ids[0] if ids else None)
            enabled = [gr.Button(interactive=True)] * len(project_buttons)
            return (gr.Dropdown(choices=choices, value=chosen, interactive=True), *refresh_project(ctx, chosen),
                    signed_in_line(ctx), *enabled)
        # ---- compare, explain, evaluate, exchange ----
        compare_tab.select(signed_in(ctx, refresh_compare), [project, compare_image], compare_outputs,
                           api_visibility="private")
        evaluate_tab.select(signed_in(ctx, refresh_compare), [project, compare_image], compare_outputs,
                            api_visibility="private")
        compare_inputs = [project, prompt_pick, compare_image, compare_upload, compare_threshold]
        compare_button.click(signed_in(ctx, compare.compare), compare_inputs,
                             [zero_view, tuned_view, counts, status], api_visibility="private")
        cam_button.click(signed_in(ctx, compare.explain),
                         [project, prompt_pick, compare_image, compare_upload, cam_class],
                         [zero_cam, tuned_cam, status], api_visibility="private")

        def on_evaluate(ctx, project_id, prompt_id):
            try:
                report = evaluation.evaluate_project(ctx, project_id, prompt_id)
            except Exception as error:
                return from_error_text(error), [], [], gr.skip()
            return (evaluation.summary_markdown(report), evaluation.per_class_rows(report),
                    evaluation.per_image_rows(ctx, report), gr.Dropdown(choices=list(report["routes"])))
        evaluate_outputs = [evaluation_summary, per_class, per_image, route_class]
        evaluate_button.click(signed_in(ctx, on_evaluate),
                              [project, prompt_pick], evaluate_outputs, api_visibility="private")

        def on_set_route(ctx, project_id, prompt_id, class_name, route):
            try:
                note = evaluation.set_route(ctx, project_id, prompt_id, class_name, route)
            except Exception as error:
                return from_error_text(error), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            summary, rows, images, classes = on_evaluate(ctx, project_id, prompt_id)
            return note, summary, rows, images, classes
        route_button.click(signed_in(ctx, on_set_route), [project, prompt_pick, route_class, route_choice],
                           [status, *evaluate_outputs], api_visibility="private")

        def open_in_compare(event: gr.SelectData):
            row = event.row_value or []
            image_id = int(row[0]) if row else None
            return gr.Tabs(selected="compare"), gr.Dropdown(value=image_id), None
        per_image.select(open_in_compare, None, [tabs, compare_image, compare_upload], api_visibility="private").then(
            signed_in(ctx, compare.compare), compare_inputs, [zero_view, tuned_view, counts, status],
            api_visibility="private")

        export_button.click(signed_in(ctx, exchange_tab.export_project), [project, export_suggestions],
                            [export_file, status],
                            api_visibility="private")
        import_button.click(signed_in(ctx, lambda ctx, p, f: (exchange_tab.import_project(ctx, p, f),
                                                              *refresh_project(ctx, p))),
                            [project, import_file], [status, *project_outputs], api_visibility="private")
        prompt_export_button.click(signed_in(ctx, exchange_tab.export_prompt), [prompt_pick], [prompt_file, status],
                                   api_visibility="private")
        prompt_import_button.click(signed_in(ctx, lambda ctx, p, f: (exchange_tab.import_prompt(ctx, p, f),
                                                                     *refresh_compare(ctx, p))),
                                   [project, prompt_upload], [status, *compare_outputs], api_visibility="private")

        project_buttons = [example_button, create_button, rename_button, delete_button]
        demo.load(signed_in(ctx, on_page_load), [project], [project, *project_outputs, who, *project_buttons],
                  api_visibility="private")
    return demo
