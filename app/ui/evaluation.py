"""Evaluate tab: COCO mAP (pycocotools) of the zero-shot model, the prompt with every class prompted and the prompt
as routed on the project's held-out images; per class its route, why, and every AP; a person's route override; and
the images that got better or worse (worst first)."""
from __future__ import annotations

import copy

from app import access, store
from app.context import AppContext
from app.heldout import heldout_dataset
from app.ui.compare import prompt_dir
from sdpt.data import FewShotSet, to_coco
from sdpt.evaluate import coco_map, detections_to_coco
from sdpt.routing import PROMPTED, ROUTES, ZERO_SHOT

# Shown above the Evaluate button: a tuned prompt is specialised to the class names it was tuned with.
OTHER_CLASSES_NOTE = ("**Note:** a prompt is tuned for this project's class names. With other class names it can "
                      "find objects worse than the zero-shot model does (the few-shot benchmark's pre-training "
                      "column in BENCHMARKS.md measures this), so for other classes use the zero-shot model, or tune "
                      "with those class names too.")


def heldout_set(ctx: AppContext, project_id: int) -> FewShotSet:
    """The project's labelled held-out images: the same set the worker scores and routes each prompt on."""
    with ctx.database.session() as session:
        access.require(session, ctx.signed_in_user(), "read", project_id=project_id)
        return heldout_dataset(session, ctx.settings.images_dir, project_id)


def _single_image(ground_truth: dict, results: list[dict], image_id: int) -> dict:
    subset = {**ground_truth, "images": [i for i in ground_truth["images"] if i["id"] == image_id],
              "annotations": [a for a in ground_truth["annotations"] if a["image_id"] == image_id]}
    return coco_map(subset, [r for r in results if r["image_id"] == image_id])


def _prompt_label(ctx: AppContext, prompt_id: int) -> str:
    with ctx.database.session() as session:
        record = session.get(store.PromptRecord, prompt_id)
        made = f"job {record.job_id}" if record.job_id else "imported"
        return f"prompt {record.id} ({made}, {record.method}, {record.created_at:%Y-%m-%d %H:%M})"


def _latest_prompt_id(ctx: AppContext, project_id: int | None) -> int | None:
    """The project's newest prompt for the loaded model: what Evaluate scores when none is picked (the picker fills
    in when the tab opens; a click before that still evaluates what the picker would show first)."""
    if project_id is None:
        return None
    with ctx.database.session() as session:
        record = store.latest_prompt(session, project_id, ctx.models.fingerprint())
        return record.id if record is not None else None


def evaluate_project(ctx: AppContext, project_id: int, prompt_id: int) -> dict:
    """Zero-shot, every-class-prompted and routed metrics on the held-out images, with each class's route; raises
    StoreError with what to do when it cannot run."""
    access.check(ctx, "read", project_id=project_id, prompt_id=prompt_id)
    if prompt_id is None:
        prompt_id = _latest_prompt_id(ctx, project_id)
    directory = prompt_dir(ctx, prompt_id)
    if directory is None:
        raise store.StoreError("no prompt to evaluate yet: tune one (tab 3) or load a prompt file (tab 6)")
    dataset = heldout_set(ctx, project_id)
    if not dataset.class_names:
        raise store.StoreError("the project has no classes")
    if not dataset.samples or dataset.num_boxes() == 0:
        raise store.StoreError("no held-out image has boxes: mark some labelled images as 'heldout' (tab 2)")
    report = ctx.models.evaluate_routes(dataset, directory)
    routing = ctx.models.prompt(directory).routing
    ground_truth = to_coco(dataset)
    results = {name: detections_to_coco(dataset, report["detections"][name])
               for name in ("zero-shot", "prompted", "routed")}
    zero, routed = results["zero-shot"], results["routed"]
    per_image = []
    for sample in dataset.samples:
        if len(sample.classes) == 0:
            continue
        before = _single_image(ground_truth, zero, sample.image_id)["map50"]
        after = _single_image(ground_truth, routed, sample.image_id)["map50"]
        per_image.append({"image_id": sample.image_id, "name": sample.path.name, "before": before, "after": after})
    per_image.sort(key=lambda row: (row["after"] - row["before"], row["image_id"]))  # worst first
    routes = {}
    for name in dataset.class_names:
        entry = routing.entry(name) if routing is not None else None
        if routing is None:
            routes[name] = (PROMPTED, None, "prompt file from before routing: every class prompted")
        elif entry is None:
            routes[name] = (ZERO_SHOT, 0, "added after this prompt was tuned")
        else:
            routes[name] = (entry.route, entry.boxes, entry.reason)
    return {"metrics": {k: report[k] for k in ("zero-shot", "prompted", "routed")}, "per_image": per_image,
            "results": results,
            "routes": routes, "prompt": _prompt_label(ctx, prompt_id), "prompt_id": prompt_id,
            "chosen_on": routing.chosen_on if routing is not None else None,
            "images": len(dataset), "boxes": dataset.num_boxes()}


def summary_markdown(report: dict) -> str:
    z, p, r = (report["metrics"][k] for k in ("zero-shot", "prompted", "routed"))
    change = r["map"] - z["map"]
    verdict = (f"**{change:+.3f}** mAP against zero-shot" if abs(change) >= 0.0005 else "the same mAP as zero-shot")
    text = (f"Scored **{report['prompt']}** on **{report['images']}** held-out images ({report['boxes']} boxes), "
            f"COCO metrics by pycocotools: as routed, {verdict}.\n\n"
            "| model | mAP@[.5:.95] | mAP@.5 | mAP@.75 |\n|---|---|---|---|\n"
            f"| zero-shot | {z['map']:.3f} | {z['map50']:.3f} | {z['map75']:.3f} |\n"
            f"| prompt, every class prompted | {p['map']:.3f} | {p['map50']:.3f} | {p['map75']:.3f} |\n"
            f"| **prompt as routed** (what pre-annotation and Compare use; the learning curve's number) | "
            f"**{r['map']:.3f}** | {r['map50']:.3f} | {r['map75']:.3f} |")
    if report.get("chosen_on") == "held-out images":
        text += ("\n\nThe routes below were chosen on these same held-out images (each class to the better model, "
                 "by a margin), so the routed figures are a little optimistic; label more held-out images for a "
                 "cleaner read.")
    return text


def per_class_rows(report: dict) -> list[list]:
    zero, tuned = report["metrics"]["zero-shot"]["per_class"], report["metrics"]["prompted"]["per_class"]
    routed = report["metrics"]["routed"]["per_class"]
    rows = []
    for name in zero:
        route, boxes, reason = report["routes"][name]
        rows.append([name, route, "-" if boxes is None else boxes, round(zero[name], 3), round(tuned[name], 3),
                     round(routed[name], 3), round(routed[name] - zero[name], 3), reason])
    return rows


PER_CLASS_HEADERS = ["class", "answered by", "training boxes", "AP zero-shot", "AP prompted", "AP as routed",
                     "change", "why"]


def set_route(ctx: AppContext, project_id: int, prompt_id: int, class_name: str, route: str) -> str:
    """A person's route for one class of a prompt (write access), kept when routes are chosen again."""
    from sdpt.prompt_io import save_routing
    from sdpt.routing import RoutingError

    access.check(ctx, "write", project_id=project_id, prompt_id=prompt_id)
    directory = prompt_dir(ctx, prompt_id)
    if directory is None or not class_name or route not in ROUTES:
        raise store.StoreError("pick a prompt, a class and a model ('prompt' or 'zero-shot') first")
    prompt = ctx.models.prompt(directory)
    if prompt.routing is None:
        raise store.StoreError("this prompt file is from before routing (every class prompted); tune again to route "
                               "classes")
    routing = copy.deepcopy(prompt.routing)
    try:
        routing.override(class_name, route)
    except RoutingError as error:
        raise store.StoreError(str(error)) from error
    save_routing(directory, routing)
    return f"'{class_name}' is now answered by the {route} model for this prompt"


def per_image_rows(ctx: AppContext, report: dict) -> list[list]:
    with ctx.database.session() as session:
        for row in report["per_image"]:
            access.require(session, ctx.signed_in_user(), "read", image_id=row["image_id"])
        names = {row["image_id"]: store.get_image(session, row["image_id"]).original_name
                 for row in report["per_image"]}
    return [[row["image_id"], names[row["image_id"]], round(row["before"], 3), round(row["after"], 3),
             round(row["after"] - row["before"], 3),
             "better" if row["after"] > row["before"] else "worse" if row["after"] < row["before"] else "same"]
            for row in report["per_image"]]
