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
def warm_detector(shapes_set):
    """tiny-random after 300 steps of full fine-tuning on the shapes set: a base that can box the shapes."""
    from sdpt.detector import load_detector

    detector = load_detector("tiny-random", device="cpu")
    full = build_method("full", detector)
    tune(detector, shapes_set, full, TrainConfig(steps=300, lr=1e-3, batch_size=2, adam_beta2=0.999,
                                                 encoder_loss=False))
    detector.model = full.tuned
    return detector.freeze()


@pytest.fixture(scope="module")
def new_words(shapes_set):
    """The same images and boxes, with class names the base never saw."""
    renamed = copy.copy(shapes_set)
    renamed.class_names = ["apple", "moon"]
    return renamed


def test_tuning_lowers_the_loss_and_its_prompt_changes_detections_only_while_applied(warm_detector, new_words):
    """SDPT on new class names: the loss falls, the tuned prompt changes what the detector finds, and the detector
    without the prompt is exactly the zero-shot one again.

    No mAP threshold here on purpose. On this 300-step random base, mAP on the four training images is not a
    monotone function of the loss: measured (new words, default lr 5e-3) after 200 / 300 / 350 / 400 / 450 / 600 steps
    mAP 0.070 / 0.107 / 0.150 / 0.165 / 0.065 / 0.010 from zero-shot 0.055, and on a 600-step base SDPT lowered
    the loss 23.3 -> 16.8 while mAP fell 0.128 -> 0.025 (class loss 4.5 -> 3.3, box L1 0.22 -> 0.33: the prompts
    bought class scores with box quality); even full fine-tuning, loss 11.6 -> 6.6, moved mAP 0.055 -> 0.058.
    A threshold on it would test the luck of one random init. Whether tuning raises mAP is measured on the trained
    small model by the few-shot benchmark (BENCHMARKS.md).
    """
    zero_shot = evaluate(warm_detector, new_words)
    # One batch of all four images, so the loss curve is deterministic. No encoder loss: this base was trained
    # without it, and a mismatch was measured to wreck the detector (benchmarks/encoder_loss.py).
    # The shared-gate injection at lr 5e-3, as this test was measured with: on this random base the fusion
    # layer-scale is 1.0 (the shipped model's is 0.006-0.011), and the default branch, added after it at full weight,
    # is unstable here (measured in this test: lr 5e-3 loss 20 -> 33, 2e-2 20 -> 18, 1e-1 a blow-up to 369). What
    # tuning with the default method does is tested on the shipped model (tests/sdpt/test_quality.py); the branch's
    # mechanics in tests/sdpt/detector/test_fusion.py.
    prompt = build_method("sdpt", warm_detector, {"injection": "shared_gate"})
    result = tune(warm_detector, new_words, prompt, TrainConfig(steps=200, batch_size=4, encoder_loss=False,
                                                                lr=5e-3))
    losses = [h.loss for h in result.history]
    assert sum(losses[-10:]) < 0.9 * sum(losses[:10]), losses
    tuned = evaluate(warm_detector, new_words, prompt)
    assert tuned["per_class"] != zero_shot["per_class"], (zero_shot, tuned)
    assert evaluate(warm_detector, new_words) == zero_shot  # nothing of the prompt stays attached


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
