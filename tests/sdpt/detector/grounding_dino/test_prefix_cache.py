"""The prompt-independent prefix cache: replayed outputs equal recomputed ones, and the cache is really used."""
import torch

from sdpt.detector import PrefixCache, encode_batch
from sdpt.methods import build_method
from tests.prompt_helpers import open_up


def _batch(detector, shapes_set, count=2):
    return encode_batch(detector, [s.load() for s in shapes_set.samples[:count]], [shapes_set.class_names] * count)


def test_cached_equals_uncached_for_a_last_layer_prompt(detector, shapes_set):
    batch = _batch(detector, shapes_set)
    prompt = open_up(build_method("sdpt", detector, {"layers": [-1]}))
    cache = PrefixCache(detector, prompt.first_prompted_layer)
    assert prompt.first_prompted_layer == len(detector.fusion_layers) - 1 > 0
    with torch.no_grad(), prompt:
        plain = detector.model(**batch.inputs)
        with cache.replay(batch.inputs):
            first = detector.model(**batch.inputs)
        with cache.replay(batch.inputs):
            replayed = detector.model(**batch.inputs)
    assert cache.misses == 3 and cache.hits == 3  # vision, text and encoder parts: filled once, then replayed
    for out in (first, replayed):
        assert torch.equal(out.logits, plain.logits)
        assert torch.equal(out.pred_boxes, plain.pred_boxes)


def test_replay_keeps_gradients_flowing_to_the_prompt(detector, shapes_set):
    batch = _batch(detector, shapes_set, 1)
    prompt = open_up(build_method("sdpt", detector, {"layers": [-1]}))
    cache = PrefixCache(detector, prompt.first_prompted_layer)
    grads = []
    for _ in range(2):
        prompt.zero_grad()
        with prompt, cache.replay(batch.inputs):
            detector.model(**batch.inputs).pred_boxes.sum().backward()
        grads.append(prompt.prototypes.grad.clone())
    assert cache.hits > 0
    assert torch.equal(grads[0], grads[1]) and grads[0].abs().sum() > 0


def test_new_inputs_miss_and_patches_are_removed(detector, shapes_set):
    cache = PrefixCache(detector, 1)
    first, second = _batch(detector, shapes_set, 1), encode_batch(
        detector, [shapes_set.samples[2].load()], [shapes_set.class_names])
    with torch.no_grad():
        with cache.replay(first.inputs):
            a = detector.model(**first.inputs)
        with cache.replay(second.inputs):
            b = detector.model(**second.inputs)
        plain_b = detector.model(**second.inputs)
    assert cache.hits == 1 and len(cache) == 2  # new image: vision parts recomputed; same prompt: text replayed
    assert not torch.equal(a.pred_boxes, b.pred_boxes)
    assert torch.equal(b.pred_boxes, plain_b.pred_boxes)
    model = detector.model.model
    assert "forward" not in model.backbone.__dict__ and "forward" not in model.text_backbone.__dict__
    assert all("forward" not in layer.__dict__ for layer in model.encoder.layers)


def test_a_learned_text_context_is_never_replayed_stale(detector, shapes_set):
    """DPT prompts the text input and only the last fusion layer: the encoder layers before it read the prompted
    text, so they must run every step (replaying them froze the context at its first value, with no gradient)."""
    from sdpt.config import TrainConfig
    from sdpt.train import tune

    runs = {}
    for cache in (True, False):
        prompt = build_method("dpt", detector, seed=0)
        assert prompt.first_prompted_layer > 0 and prompt.prompts_text_backbone
        start = prompt.context.detach().clone()
        result = tune(detector, shapes_set, prompt, TrainConfig(steps=3, batch_size=2, lr=5e-2, cache=cache))
        assert not torch.equal(prompt.context, start)  # the context trains
        runs[cache] = [step.loss for step in result.history]
    assert runs[True] == runs[False]  # the cache changes nothing but the time
