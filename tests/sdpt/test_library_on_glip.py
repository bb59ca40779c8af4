"""The library on GLIP, end to end through the host interface: tuning (with a class nobody labelled, held to the
cached teacher, and early stopping), routed detection, evaluation and a class-specific CAM."""
import copy

import numpy as np
import torch

from sdpt.cam import class_cam, describe_cam
from sdpt.config import TrainConfig
from sdpt.evaluate import evaluate
from sdpt.inference import detect, detect_many
from sdpt.methods import build_method
from sdpt.routing import PROMPTED, ZERO_SHOT
from sdpt.train import tune


def _with_unlabelled(shapes_set):
    grown = copy.copy(shapes_set)
    grown.class_names = list(shapes_set.class_names) + ["green star"]  # a project class with no box yet
    return grown


def test_tune_routes_and_evaluates_on_glip(glip_detector, shapes_set):
    dataset = _with_unlabelled(shapes_set)
    prompt = build_method("sdpt", glip_detector, {"num_tokens": 4}, seed=0)
    # the teacher is off by default (chosen on validation draws); on here, so the GLIP host's teacher is exercised
    config = TrainConfig(steps=6, batch_size=2, lr=0.05, validate_every=3, distill_weight=10.0)
    result = tune(glip_detector, dataset, prompt, config, validation=dataset)
    assert len(result.history) == 6 and all(np.isfinite(s.loss) for s in result.history)
    assert "distill" in result.history[0].parts  # the unlabelled class is held to the cached teacher
    assert result.best_step in (0, 3, 6)
    routes = {name: prompt.routing.route_of(name) for name in dataset.class_names}
    assert routes["green star"] == ZERO_SHOT and routes[shapes_set.class_names[0]] == PROMPTED
    images = [s.path for s in dataset.samples]
    zero, routed = detect_many(glip_detector, images, dataset.class_names, [None, prompt], threshold=0.0, top_k=50)
    star = dataset.class_names.index("green star")
    for z, r in zip(zero, routed):  # the zero-shot-routed class keeps exactly the zero-shot model's boxes
        assert torch.equal(z.scores[z.classes == star], r.scores[r.classes == star])
    report = evaluate(glip_detector, dataset, prompt)
    assert 0.0 <= report["map"] <= 1.0 and set(report["per_class"]) == set(dataset.class_names)


def test_detect_splits_long_class_lists_on_glip(glip_detector, shapes_set):
    names = [f"thing number {k}" for k in range(20)] + list(shapes_set.class_names)
    assert len(glip_detector.class_chunks(names)) > 1  # more than one caption of 64 tokens
    found = detect(glip_detector, [shapes_set.samples[0].path], names, threshold=0.0, top_k=30)[0]
    assert len(found) > 0 and int(found.classes.max()) < len(names) and found.class_names == names


def test_cam_on_glip(glip_detector, shapes_set):
    sample = shapes_set.samples[0]
    prompt = build_method("sdpt", glip_detector, {"num_tokens": 4})
    heat = class_cam(glip_detector, sample.path, shapes_set.class_names, 0, prompt)
    image = sample.load()
    assert heat.shape == (image.height, image.width) and np.isfinite(heat).all() and heat.max() <= 1.0
    assert "FPN" in describe_cam(glip_detector)
