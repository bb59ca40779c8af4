"""Evaluate tab: COCO mAP (pycocotools) of the zero-shot and the prompted model on the project's held-out images,
per class, and the images that got better or worse."""
from __future__ import annotations

import torch

from app import access, store
from app.context import AppContext
from app.ui.compare import prompt_dir
from sdpt.data import FewShotSet, Sample, to_coco
from sdpt.evaluate import coco_map, detections_to_coco

# Shown above the Evaluate button: a tuned prompt is specialised to the class names it was tuned with.
OTHER_CLASSES_NOTE = ("**Note:** a prompt is tuned for this project's class names. With other class names it can "
                      "find objects worse than the zero-shot model does (the few-shot benchmark's pre-training "
                      "column in BENCHMARKS.md measures this), so for other classes use the zero-shot model, or tune "
                      "with those class names too.")


def heldout_set(ctx: AppContext, project_id: int) -> FewShotSet:
    with ctx.database.session() as session:
        access.require(session, ctx.signed_in_user(), "read", project_id=project_id)
        names = [c.name for c in store.list_classes(session, project_id)]
        index = {name.casefold(): k for k, name in enumerate(names)}
        samples = []
        for record in store.list_images(session, project_id):
            if record.split != "heldout":
                continue
            boxes = [[b.x0, b.y0, b.x1, b.y1] for b in record.boxes]
            classes = [index[b.label.name_key] for b in record.boxes]
            samples.append(Sample(store.image_file(ctx.settings.images_dir, record), record.width, record.height,
                                  torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                  torch.tensor(classes, dtype=torch.long), image_id=record.id))
        return FewShotSet(names, samples)


def _single_image(ground_truth: dict, results: list[dict], image_id: int) -> dict:
    subset = {**ground_truth, "images": [i for i in ground_truth["images"] if i["id"] == image_id],
              "annotations": [a for a in ground_truth["annotations"] if a["image_id"] == image_id]}
    return coco_map(subset, [r for r in results if r["image_id"] == image_id])


def evaluate_project(ctx: AppContext, project_id: int, prompt_id: int) -> dict:
    """Both models' metrics on the held-out images; raises StoreError with what to do when it cannot run."""
    access.check(ctx, "read", project_id=project_id, prompt_id=prompt_id)
    directory = prompt_dir(ctx, prompt_id)
    if directory is None:
        raise store.StoreError("no prompt to evaluate yet: tune one (tab 3) or load a prompt file (tab 6)")
    dataset = heldout_set(ctx, project_id)
    if not dataset.class_names:
        raise store.StoreError("the project has no classes")
    if not dataset.samples or dataset.num_boxes() == 0:
        raise store.StoreError("no held-out image has boxes: mark some labelled images as 'heldout' (tab 2)")
    zero, tuned = ctx.models.detect_both([s.path for s in dataset.samples], dataset.class_names, directory,
                                         threshold=0.0, top_k=100)
    ground_truth = to_coco(dataset)
    results = {"zero-shot": detections_to_coco(dataset, zero), "prompted": detections_to_coco(dataset, tuned)}
    metrics = {name: coco_map(ground_truth, found) for name, found in results.items()}
    per_image = []
    for sample in dataset.samples:
        if len(sample.classes) == 0:
            continue
        before = _single_image(ground_truth, results["zero-shot"], sample.image_id)["map50"]
        after = _single_image(ground_truth, results["prompted"], sample.image_id)["map50"]
        per_image.append({"image_id": sample.image_id, "name": sample.path.name, "before": before, "after": after})
    per_image.sort(key=lambda row: row["after"] - row["before"], reverse=True)
    return {"metrics": metrics, "results": results, "ground_truth": ground_truth, "per_image": per_image,
            "images": len(dataset), "boxes": dataset.num_boxes()}


def summary_markdown(report: dict) -> str:
    z, p = report["metrics"]["zero-shot"], report["metrics"]["prompted"]
    return (f"On **{report['images']}** held-out images ({report['boxes']} boxes), COCO metrics by pycocotools:\n\n"
            "| model | mAP@[.5:.95] | mAP@.5 | mAP@.75 |\n|---|---|---|---|\n"
            f"| zero-shot | {z['map']:.3f} | {z['map50']:.3f} | {z['map75']:.3f} |\n"
            f"| prompted | {p['map']:.3f} | {p['map50']:.3f} | {p['map75']:.3f} |")


def per_class_rows(report: dict) -> list[list]:
    zero, tuned = report["metrics"]["zero-shot"]["per_class"], report["metrics"]["prompted"]["per_class"]
    return [[name, round(zero[name], 3), round(tuned[name], 3), round(tuned[name] - zero[name], 3)]
            for name in zero]


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
