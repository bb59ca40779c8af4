"""Does tuning make the detector better? The default method on a fixed `new_word` 5-shot set of the shipped small
model must raise held-out mAP by a measured margin.

The margin is the mean gain minus 3 standard deviations over seeds, measured with this exact protocol by
`python -m benchmarks.quality_margin --seeds 0 1 2 3` (1 CPU thread) with the default, SDPT with 20 tokens and
per-head branch scales at lr 1e-1, re-measured after the branch's output projection moved onto the prompt values
(2026-12-01): gains 0.083, 0.080, 0.148, 0.139 over zero-shot mAP 0.028, mean 0.112, sd 0.036, mean - 3 sd = 0.0047.
(The same default before that change, which only moves float rounding: 0.087, 0.082, 0.140, 0.140, margin 0.0152.
Earlier defaults: 10 tokens with per-head scales, mean 0.115, sd 0.036, margin 0.0079;
10 tokens with one scale per layer and stream, mean 0.100, sd 0.020, margin 0.040.) The previous injection (SDPT
through the shared-softmax gate) gained -0.008 on this protocol (seed 0, `--injection shared_gate`, lr 5e-2) and at
most 0.002 on every few-shot task, so a method that stops working fails here.
"""
from pathlib import Path

import pytest

MARGIN = 0.0047


@pytest.mark.slow
def test_default_method_raises_heldout_map_on_new_words(tmp_path):
    from benchmarks.quality_margin import MODEL, default_gain
    from sdpt.detector import load_detector

    detector = load_detector(str(MODEL), device="cpu")
    zero_shot, tuned = default_gain(detector, Path(tmp_path), seed=0)
    assert tuned - zero_shot >= MARGIN, f"zero-shot mAP {zero_shot:.4f}, tuned {tuned:.4f}: gain below {MARGIN}"


@pytest.mark.slow
def test_withheld_classes_stay_at_least_at_zero_shot(tmp_path):
    """The same protocol with one of `new_word`'s three classes withheld (no training box, as a class nobody has
    labelled yet): as the default detects it, its AP is at least the zero-shot model's, and the tuned classes still
    gain."""
    from benchmarks.quality_margin import BATCH, POOL_IMAGES, SHOTS, STEPS, TASK, TEST_IMAGES
    from benchmarks.withheld_classes import class_means, draw
    from sdpt.config import TrainConfig
    from sdpt.data import load_coco
    from sdpt.detector import load_detector
    from sdpt.evaluate import evaluate
    from sdpt.methods import DEFAULT_METHOD, build_method
    from sdpt.synthetic.grounding import TASKS, write_coco
    from sdpt.train import tune

    from benchmarks.quality_margin import MODEL

    detector = load_detector(str(MODEL), device="cpu")
    style = TASKS[TASK]
    pool = load_coco(write_coco(tmp_path / "pool", style, POOL_IMAGES, 30_000), tmp_path / "pool" / "images")
    test = load_coco(write_coco(tmp_path / "test", style, TEST_IMAGES, 40_000), tmp_path / "test" / "images")
    withheld = [style.class_names[0]]
    train, _validation = draw(pool, SHOTS, 0, withheld)
    prompt = build_method(DEFAULT_METHOD, detector, seed=0)
    tune(detector, train, prompt, TrainConfig(steps=STEPS, batch_size=BATCH, seed=0))
    zero, tuned = evaluate(detector, test)["per_class"], evaluate(detector, test, prompt)["per_class"]
    kept = [n for n in style.class_names if n not in withheld]
    assert class_means(tuned, withheld) >= class_means(zero, withheld) - 1e-9, (zero, tuned)
    assert class_means(tuned, kept) > class_means(zero, kept), (zero, tuned)
