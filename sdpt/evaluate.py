"""COCO mAP of a detector (with or without a prompt) on a box-labelled set, through pycocotools."""
from __future__ import annotations

import contextlib
import io
import logging

import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from sdpt.data import FewShotSet, to_coco
from sdpt.detector import Detections

logger = logging.getLogger(__name__)


def detections_to_coco(dataset: FewShotSet, detections: list[Detections]) -> list[dict]:
    """COCO result entries (category ids 1..K, as in `to_coco`) for per-image detections."""
    results = []
    for index, (sample, found) in enumerate(zip(dataset.samples, detections)):
        image_id = sample.image_id or index + 1
        for box, cls, score in zip(found.boxes.tolist(), found.classes.tolist(), found.scores.tolist()):
            x0, y0, x1, y1 = box
            results.append({"image_id": image_id, "category_id": int(cls) + 1,
                            "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)})
    return results


def coco_map(ground_truth: dict, results: list[dict]) -> dict:
    """mAP@[.5:.95], mAP@.5, mAP@.75 and per-class AP (by category name) from COCO dicts."""
    quiet = io.StringIO()  # pycocotools prints its progress; keep stdout clean for --json
    with contextlib.redirect_stdout(quiet):
        coco_gt = COCO()
        coco_gt.dataset = {k: list(v) for k, v in ground_truth.items()}
        coco_gt.createIndex()
        if not results:
            empty = {"map": 0.0, "map50": 0.0, "map75": 0.0}
            return {**empty, "per_class": {c["name"]: 0.0 for c in ground_truth["categories"]}}
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    logger.debug(quiet.getvalue())
    precision = evaluator.eval["precision"]  # (iou thresholds, recall, classes, areas, max dets)
    per_class = {}
    for k, category_id in enumerate(evaluator.params.catIds):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        per_class[coco_gt.cats[category_id]["name"]] = float(values.mean()) if values.size else float("nan")
    stats = evaluator.stats
    return {"map": max(float(stats[0]), 0.0), "map50": max(float(stats[1]), 0.0), "map75": max(float(stats[2]), 0.0),
            "per_class": per_class}


def evaluate_detections(dataset: FewShotSet, detections: list[Detections]) -> dict:
    return coco_map(to_coco(dataset), detections_to_coco(dataset, detections))


def evaluate(detector, dataset: FewShotSet, prompt=None, batch_size: int = 4, on_batch=None,
             routed: bool = True) -> dict:
    """COCO metrics of the detector (prompted if `prompt` is given, each class by the model its routing names unless
    `routed=False`) on every image of `dataset`."""
    from sdpt.inference import detect_many

    images = [sample.path for sample in dataset.samples]
    detections = detect_many(detector, images, dataset.class_names, [prompt], threshold=0.0, top_k=100,
                             batch_size=batch_size, on_batch=on_batch, routed=routed)[0]
    metrics = evaluate_detections(dataset, detections)
    metrics["images"] = len(dataset)
    metrics["boxes"] = dataset.num_boxes()
    return metrics


def evaluate_routes(detector, dataset: FewShotSet, prompt, batch_size: int = 4, on_batch=None) -> dict:
    """Metrics of the zero-shot model, of the prompt with every class prompted, and of the prompt as routed, from one
    detection pass that shares the prompt-independent work: {"zero-shot", "prompted", "routed"} -> metrics, plus the
    detections of each under "detections"."""
    from sdpt.inference import detect_many, routed_detections

    images = [sample.path for sample in dataset.samples]
    zero, tuned = detect_many(detector, images, dataset.class_names, [None, prompt], threshold=0.0, top_k=100,
                              batch_size=batch_size, on_batch=on_batch, routed=False)
    if prompt.routing is None:
        routed = tuned
    else:
        mask = torch.tensor(prompt.routing.prompted_mask(dataset.class_names), dtype=torch.bool)
        routed = [routed_detections(z, t, mask) for z, t in zip(zero, tuned)]
    detections = {"zero-shot": zero, "prompted": tuned, "routed": routed}
    report = {name: evaluate_detections(dataset, found) for name, found in detections.items()}
    for metrics in report.values():
        metrics["images"], metrics["boxes"] = len(dataset), dataset.num_boxes()
    report["detections"] = detections
    return report


__all__ = ["coco_map", "detections_to_coco", "evaluate", "evaluate_detections", "evaluate_routes"]
