"""A project's held-out images as one set, and what a tune does with them: early stopping, per-class routes, and
the one held-out score each prompt carries (the learning curve, the job's message and the Evaluate tab read the
same number for the same prompt).

The held-out images are the ones marked 'heldout' that a person labelled or reviewed (an unreviewed image without
boxes says nothing about what is in it), with their confirmed boxes of the project's classes.
"""
from __future__ import annotations

import logging
import random

import torch

from app import store

logger = logging.getLogger(__name__)

MIN_VALIDATION_IMAGES = 3  # fewer labelled held-out images than this: carve validation images from training instead
CARVE_FROM = 6  # carve only from training sets at least this large (a quarter of them, at least 2)


def heldout_dataset(session, images_dir, project_id: int):
    """The project's labelled held-out images as an sdpt FewShotSet (classes in project order)."""
    from sdpt.data import FewShotSet, Sample

    names = [c.name for c in store.list_classes(session, project_id)]
    index = {name.casefold(): k for k, name in enumerate(names)}
    samples = []
    for record in store.list_images(session, project_id):
        if record.split != "heldout" or not (record.boxes or record.reviewed):
            continue
        kept = [b for b in record.boxes if b.label.name_key in index]
        samples.append(Sample(store.image_file(images_dir, record), record.width, record.height,
                              torch.tensor([[b.x0, b.y0, b.x1, b.y1] for b in kept],
                                           dtype=torch.float32).reshape(-1, 4),
                              torch.tensor([index[b.label.name_key] for b in kept], dtype=torch.long),
                              image_id=record.id))
    return FewShotSet(names, samples)


def validation_split(training, heldout, seed: int = 0):
    """(training set, validation set or None, where it came from) for early stopping.

    The held-out images when there are enough of them (the page then says the held-out figures also chose the
    kept step and the routes); else a quarter of a large enough training set, carved off (seeded); else none."""
    from sdpt.data import FewShotSet

    labelled = [s for s in heldout.samples if len(s.classes)]
    if len(labelled) >= MIN_VALIDATION_IMAGES:
        return training, FewShotSet(heldout.class_names, heldout.samples), "held-out images"
    if len(training.samples) >= CARVE_FROM:
        order = list(range(len(training.samples)))
        random.Random(seed).shuffle(order)
        count = max(2, len(order) // 4)
        carved = set(order[:count])
        rest = FewShotSet(training.class_names, [s for k, s in enumerate(training.samples) if k not in carved])
        if rest.num_boxes() > 0:
            validation = FewShotSet(training.class_names, [training.samples[k] for k in sorted(carved)])
            return rest, validation, f"{count} training images set aside"
    return training, None, "none (too few labelled images)"


def route_and_score(detector, prompt, heldout) -> dict | None:
    """Choose the prompt's routes on the held-out images (each class to the better model, with the routing's
    margin) and score it as routed; None without held-out boxes (routes stay as the training boxes set them).

    Returns {"routed", "zero-shot", "prompted"} metrics; the routed ones are what the prompt is known by."""
    from sdpt.evaluate import evaluate_detections, evaluate_routes
    from sdpt.inference import routed_detections
    from sdpt.routing import choose_routes

    if not heldout.samples or heldout.num_boxes() == 0:
        return None
    report = evaluate_routes(detector, heldout, prompt)
    prompt.routing = choose_routes(prompt.routing, report["zero-shot"]["per_class"], report["prompted"]["per_class"],
                                   chosen_on="held-out images")
    mask = torch.tensor(prompt.routing.prompted_mask(heldout.class_names), dtype=torch.bool)
    found = report["detections"]
    routed = evaluate_detections(heldout, [routed_detections(z, t, mask) for z, t in
                                           zip(found["zero-shot"], found["prompted"])])
    routed["images"], routed["boxes"] = len(heldout), heldout.num_boxes()
    return {"routed": routed, "zero-shot": report["zero-shot"], "prompted": report["prompted"]}
