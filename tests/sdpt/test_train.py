"""Tuning: it lowers the loss on a new word for a known thing and its prompt acts only while applied; callbacks report
and cancel."""
import copy

import pytest
import torch

from sdpt.config import TrainConfig
from sdpt.data import DataError, FewShotSet
from sdpt.evaluate import evaluate
from sdpt.methods import build_method
from sdpt.train import tune


@pytest.fixture(scope="module")
def new_words(shapes_set):
    """The same images and boxes, with class names the base never saw."""
    renamed = copy.copy(shapes_set)
    renamed.class_names = ["apple", "moon"]
    return renamed


def test_tuning_lowers_the_loss_and_its_prompt_changes_detections_only_while_applied(shipped_detector, new_words):
    """The default method on new class names, on the shipped small model: the loss falls, mAP on the training images
    rises, and the detector without the prompt is exactly the zero-shot one again.

    This test once ran on a 300-step random base with the shared-gate injection, and failed on an AVX-512 machine
    (loss 16.4 -> 20.1) while passing with AVX2 kernels: on that unstable base the outcome hung on float rounding.
    On the shipped model the same 60 steps give the same figures with AVX2 and with the plain kernels
    (ATEN_CPU_CAPABILITY=default): loss 8.27 -> 2.71 (means of the first and last 10 steps), mAP 0.056 -> 0.817.
    The thresholds below leave wide room on both.
    """
    zero_shot = evaluate(shipped_detector, new_words)
    # One batch of all four images, so the loss curve is deterministic.
    prompt = build_method("sdpt", shipped_detector)
    result = tune(shipped_detector, new_words, prompt, TrainConfig(steps=60, batch_size=4))
    losses = [h.loss for h in result.history]
    assert sum(losses[-10:]) < 0.6 * sum(losses[:10]), losses
    tuned = evaluate(shipped_detector, new_words, prompt)
    assert tuned["map"] > zero_shot["map"] + 0.3, (zero_shot, tuned)
    assert evaluate(shipped_detector, new_words) == zero_shot  # nothing of the prompt stays attached


def test_progress_and_cancel_callbacks(detector, shapes_set):
    seen = []
    prompt = build_method("sdpt", detector)
    result = tune(detector, shapes_set, prompt, TrainConfig(steps=50, batch_size=2), on_step=seen.append,
                  should_stop=lambda: len(seen) >= 3)
    assert result.cancelled and len(result.history) == 3
    assert [s.step for s in seen] == [1, 2, 3] and all(s.total_steps == 50 for s in seen)
    assert seen[-1].eta_s > 0 and seen[-1].elapsed_s > 0 and seen[0].lr < seen[-1].lr  # warm-up
    assert all("forward" not in attn.__dict__ for attn in detector.fusion_layers)  # detached after cancel


def test_same_seed_same_prompt(detector, shapes_set):
    prompts = []
    for _ in range(2):
        prompt = build_method("sdpt", detector)
        tune(detector, shapes_set, prompt, TrainConfig(steps=3, batch_size=2, seed=5))
        prompts.append(prompt.prototypes.detach().clone())
    assert torch.equal(prompts[0], prompts[1])


def test_cached_and_uncached_tuning_agree(detector, shapes_set):
    results = []
    for cache in (True, False):
        prompt = build_method("sdpt", detector, {"layers": [-1]})
        result = tune(detector, shapes_set, prompt, TrainConfig(steps=4, batch_size=2, cache=cache))
        results.append(([h.loss for h in result.history], prompt.prototypes.detach().clone()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)


@pytest.mark.parametrize("method", ["sdpt", "full"])
def test_activation_checkpointing_gives_the_same_training(detector, shapes_set, method):
    results = []
    for checkpointing in (False, True):
        prompt = build_method(method, detector)
        result = tune(detector, shapes_set, prompt, TrainConfig(steps=3, batch_size=2, checkpointing=checkpointing,
                                                                lr=1e-4 if method == "full" else 5e-3))
        trained = [p.detach().clone() for p in prompt.parameters() if p.requires_grad][:4]
        results.append(([h.loss for h in result.history], trained))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(results[0][1], results[1][1]))
    # The layers are back to their own forward afterwards.
    assert all("forward" not in vars(layer) for layer in detector.model.model.encoder.layers)


def test_no_boxes_is_refused(detector, shapes_set):
    empty = FewShotSet(shapes_set.class_names, [copy.copy(s) for s in shapes_set.samples])
    for sample in empty.samples:
        sample.boxes, sample.classes = torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
    with pytest.raises(DataError, match="no boxes"):
        tune(detector, empty, build_method("sdpt", detector), TrainConfig(steps=1))


def test_many_classes_are_split_across_prompts_in_training(detector, shapes_set):
    many = FewShotSet([f"filler {i}" for i in range(120)] + shapes_set.class_names,
                      [copy.copy(s) for s in shapes_set.samples])
    for sample in many.samples:
        sample.classes = sample.classes + 120
    from sdpt.detector import split_class_names
    from sdpt.train import training_items

    assert len(split_class_names(detector.tokenizer, many.class_names, detector.config.max_text_len)) > 1
    items = training_items(detector, many)
    assert all(set(s.classes.tolist()) <= set(chunk) for (i, chunk), s in zip(items, many.samples))
    result = tune(detector, many, build_method("sdpt", detector), TrainConfig(steps=2, batch_size=2))
    assert len(result.history) == 2


def test_chunked_tuning_with_saved_state_equals_one_run(detector, shapes_set, tmp_path):
    """A run paused after every step, its state saved to disk and restored into a fresh prompt each time, ends
    where one uninterrupted run ends (the way the app tunes inside time-limited GPU calls)."""
    from sdpt.config import TrainConfig
    from sdpt.methods import build_method
    from sdpt.prompt_io import load_tune_state, save_tune_state
    from sdpt.train import tune

    config = TrainConfig(steps=5, batch_size=2)
    whole = tune(detector, shapes_set, build_method("sdpt", detector), config)
    assert whole.finished
    losses, state, chunks = [], None, 0
    while True:
        prompt = build_method("sdpt", detector)
        if state is not None:
            state = load_tune_state(tmp_path, prompt)
        part = tune(detector, shapes_set, prompt, config, resume=state, max_seconds=0.0)
        losses += [h.loss for h in part.history]
        chunks += 1
        if part.finished:
            break
        save_tune_state(tmp_path, prompt, part.state)
        state = part.state
    assert chunks == 5
    assert losses == pytest.approx([h.loss for h in whole.history], rel=1e-5)
    for a, b in zip(whole.prompt.parameters(), prompt.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
