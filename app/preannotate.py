"""The bulk pre-annotation job: batched detection over every unreviewed image, each suggestion scored for how much
a person's look would help (near the threshold, two classes on one object, zero-shot and prompt disagreeing)."""
from __future__ import annotations

import logging
from typing import Callable

import torch

from app import store, suggestions
from app.db import Database
from app.heldout import heldout_dataset
from app.settings import Settings

logger = logging.getLogger(__name__)

BATCH_IMAGES = 8  # images per detection call and per database transaction
NEAR_THRESHOLD = 0.15  # detections this far below the threshold still mark an image as uncertain
SAME_OBJECT_IOU = 0.5


def _iou_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box in `a` (n, 4) with every box in `b` (m, 4), pixel xyxy."""
    if len(a) == 0 or len(b) == 0:
        return torch.zeros(len(a), len(b))
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def score_suggestions(found, threshold: float, other=None) -> list[dict]:
    """Suggestions (score >= threshold) of one image's `Detections`, each with an uncertainty in [0, 1]:
    - how close its score is to the threshold (or a near miss just below it exists on the same object);
    - another class claims the same object (class confusion);
    - `other` (the zero-shot detections, when a prompt made `found`) has no box of that class there.
    """
    boxes, classes, scores = found.boxes.float(), found.classes, found.scores
    band = scores >= threshold - NEAR_THRESHOLD
    # rival[k, j]: detection j claims k's object with another class, scoring within the near band
    rival = (_iou_matrix(boxes, boxes) >= SAME_OBJECT_IOU) & (classes[:, None] != classes[None, :]) & band[None, :]
    ratio = scores[None, :] / scores[:, None].clamp(min=1e-9)
    confusion_all = torch.where(rival, ratio, torch.zeros(())).amax(dim=1).clamp(max=1.0) if len(scores) else scores
    if other is not None:
        other_band = other.scores >= threshold - NEAR_THRESHOLD
        agrees = ((_iou_matrix(boxes, other.boxes.float()) >= SAME_OBJECT_IOU)
                  & (classes[:, None] == other.classes[None, :]) & other_band[None, :]).any(dim=1)
    kept = []
    for k in torch.nonzero(scores >= threshold).flatten().tolist():
        box, cls, score = boxes[k].tolist(), int(classes[k]), float(scores[k])
        near = 1.0 - min(1.0, (score - threshold) / 0.25)
        confusion = float(confusion_all[k])
        disagreement = 0.0 if other is None or bool(agrees[k]) else 0.7
        kept.append({"label": found.class_names[cls], "xmin": box[0], "ymin": box[1], "xmax": box[2],
                     "ymax": box[3], "score": score, "uncertainty": round(max(near, confusion, disagreement), 4)})
    return kept


def run_preannotate(database: Database, settings: Settings, detector, job_id: int,
                    progress: Callable[[int, int, str], bool], compare_zero_shot: bool = False) -> tuple[str, str]:
    """Run one pre-annotation job; returns its final (status, message), status 'done' or 'cancelled'.

    Each batch of images is one transaction, and an image's suggestions are replaced whole, so a job cancelled (or
    killed) halfway leaves every image with either its old suggestions or its new ones. `progress(done, total,
    message)` returns True when a cancel was requested.
    """
    from sdpt.inference import detect_many
    from sdpt.prompt_io import load_prompt

    with database.session() as session:
        job = store.get_job(session, job_id)
        names, threshold, prompt_id = list(job.class_names), float(job.threshold or 0.3), job.prompt_id
        prompt_dir = None
        if prompt_id is not None:
            record = session.get(store.PromptRecord, prompt_id)
            if record is None:
                raise store.StoreError(f"prompt {prompt_id} was deleted after the job was queued")
            prompt_dir = settings.prompts_dir / record.relative_dir
        targets = []
        for image_id in job.image_ids:
            image = session.get(store.ImageRecord, image_id)
            if image is not None:
                targets.append((image.id, store.image_file(settings.images_dir, image)))
    prompt = load_prompt(prompt_dir, detector)[0] if prompt_dir is not None else None
    source = "zero-shot" if prompt is None else "prompt"
    prompts = [prompt] if prompt is None or not compare_zero_shot else [prompt, None]
    low = max(0.01, threshold - NEAR_THRESHOLD)
    written = 0
    for start in range(0, len(targets), BATCH_IMAGES):
        batch = targets[start:start + BATCH_IMAGES]
        results = detect_many(detector, [path for _, path in batch], names, prompts, threshold=low, top_k=100,
                              batch_size=BATCH_IMAGES)
        with database.session() as session:
            for k, (image_id, _path) in enumerate(batch):
                other = results[1][k] if len(prompts) > 1 else None
                found = score_suggestions(results[0][k], threshold, other)
                written += suggestions.write_suggestions(session, image_id, found, source, prompt_id, job_id)
        done = start + len(batch)
        if progress(done, len(targets), f"pre-annotated {done}/{len(targets)} images"):
            return "cancelled", (f"cancelled after {done}/{len(targets)} images: those have new suggestions, "
                                 "the rest kept their old ones")
    skipped = len(targets) - written
    note = f"; {skipped} reviewed meanwhile, left alone" if skipped else ""
    return "done", f"done: suggestions on {written} images ({source}, score >= {threshold:.2f}){note}"


def heldout_metrics(database: Database, settings: Settings, detector, project_id: int, prompt) -> dict | None:
    """COCO mAP of `prompt` (as routed; None = zero-shot) on the project's labelled held-out images, or None
    without any."""
    from sdpt.evaluate import evaluate

    with database.session() as session:
        dataset = heldout_dataset(session, settings.images_dir, project_id)
    if not dataset.samples or dataset.num_boxes() == 0:
        return None
    return evaluate(detector, dataset, prompt, batch_size=BATCH_IMAGES)
