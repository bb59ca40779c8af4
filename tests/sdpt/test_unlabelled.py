"""Classes nobody labelled yet: no negative signal, held to the cached zero-shot teacher (with no forward per step),
and early stopping that keeps the best validation step; on the shipped small model (trained weights)."""
import copy

import pytest
import torch

from sdpt.config import TrainConfig
from sdpt.evaluate import evaluate
from sdpt.inference import detect_many
from sdpt.methods import build_method
from sdpt.routing import PROMPTED, ZERO_SHOT
from sdpt.train import tune


@pytest.fixture(scope="module")
def with_unlabelled(shapes_set):
    """The shapes, renamed, plus a third project class that has no box anywhere (nobody labelled it yet)."""
    grown = copy.copy(shapes_set)
    grown.class_names = ["apple", "moon", "red square"]
    return grown


def _scores_of(detector, dataset, prompt, cls):
    found = detect_many(detector, [s.path for s in dataset.samples], dataset.class_names, [prompt], threshold=0.0,
                        top_k=100, routed=False)[0]
    return torch.stack([f.scores[f.classes == cls][:5].mean() for f in found])


def test_a_class_without_boxes_is_not_pushed_down(shipped_detector, with_unlabelled):
    """The same 30 steps with the old loss (the class is a negative everywhere, as a labelled-absent class is), the
    default (no negative signal, teacher off) and the teacher on: the unlabelled class's scores move less with no
    negative signal and far less with the teacher; every new prompt routes it to zero-shot."""
    before = _scores_of(shipped_detector, with_unlabelled, None, 2)
    moved = {}
    for name, settings in {"old loss": {"unlabelled_negatives": True}, "default": {},
                           "teacher": {"distill_weight": 10.0}}.items():
        prompt = build_method("sdpt", shipped_detector)
        tune(shipped_detector, with_unlabelled, prompt, TrainConfig(steps=30, batch_size=4, **settings))
        moved[name] = float((_scores_of(shipped_detector, with_unlabelled, prompt, 2) - before).abs().mean())
        if name != "old loss":
            assert prompt.routing.route_of("red square") == ZERO_SHOT and prompt.routing.route_of("apple") == PROMPTED
    assert moved["default"] < 0.85 * moved["old loss"], moved
    assert moved["teacher"] < 0.25 * moved["old loss"], moved


def test_the_teacher_is_computed_once_not_per_step(shipped_detector, with_unlabelled):
    calls = []
    handle = shipped_detector.model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(1),
                                                              with_kwargs=True)
    try:
        config = TrainConfig(steps=6, batch_size=2, distill_weight=10.0)
        tune(shipped_detector, with_unlabelled, build_method("sdpt", shipped_detector), config)
        with_teacher = len(calls)
        calls.clear()
        tune(shipped_detector, with_unlabelled, build_method("sdpt", shipped_detector),
             TrainConfig(steps=6, batch_size=2, distill_weight=0.0))
    finally:
        handle.remove()
    batches = 2  # 4 images, 2 per batch
    assert len(calls) == 6 and with_teacher == 6 + batches


def test_early_stopping_keeps_the_best_validation_step(shipped_detector, with_unlabelled):
    validation = copy.copy(with_unlabelled)
    result = tune(shipped_detector, with_unlabelled, build_method("sdpt", shipped_detector),
                  TrainConfig(steps=12, batch_size=4, validate_every=4), validation=validation)
    steps = [step for step, _ in result.validation]
    assert steps == [0, 4, 8, 12]
    best = max(score for _, score in result.validation)
    # the default keeps the best step (a tie goes to the later one), never below the zero-shot start
    kept_step, kept = max((step, score) for step, score in result.validation if score >= best)
    assert result.best_step == kept_step and kept >= result.validation[0][1]
    # the kept prompt scores the best figure again, routed as choose_routes routes it on these images
    from sdpt.early_stopping import routed_map

    zero = evaluate(shipped_detector, validation)["per_class"]
    prompted = evaluate(shipped_detector, validation, result.prompt, routed=False)["per_class"]
    assert routed_map(result.prompt.routing, zero, prompted) == pytest.approx(kept, abs=1e-9)
    assert kept >= result.validation[0][1]  # never below the step-0 prompt (the zero-shot model)
