"""GLIP's prefix cache: both backbones replay exactly, a prompted forward on replayed features equals a computed
one, and a learned text context is never replayed stale."""
import torch

from sdpt.methods import build_method
from tests.prompt_helpers import open_up


def _predictions(detector, batch):
    p = detector.forward(batch).predictions
    return p.dot_product_logits, p.flat_box_regression(), p.flat_centerness()


def test_replayed_prefix_gives_the_same_outputs(glip_detector, shapes_set):
    batch = glip_detector.encode([s.load() for s in shapes_set.samples[:2]], [shapes_set.class_names] * 2)
    prompt = open_up(build_method("sdpt", glip_detector, {"num_tokens": 4}), 0.5)
    cache = glip_detector.prefix_cache(prompt.first_prompted_layer)
    with torch.no_grad(), prompt:
        plain = _predictions(glip_detector, batch)
        for _ in range(2):
            with cache.replay(batch.inputs):
                replayed = _predictions(glip_detector, batch)
            assert all(torch.equal(a, b) for a, b in zip(replayed, plain))
    assert (cache.misses, cache.hits, len(cache)) == (2, 2, 1)  # image and text once each, then replayed
    assert "forward" not in glip_detector.model.backbone.__dict__
    assert "forward" not in glip_detector.model.language_backbone.__dict__


def test_gradients_reach_the_prompt_through_a_replayed_prefix(glip_detector, shapes_set):
    samples = shapes_set.samples[:2]
    batch = glip_detector.encode([s.load() for s in samples], [shapes_set.class_names] * 2,
                                 [{"boxes": s.boxes, "classes": s.classes} for s in samples])
    prompt = open_up(build_method("sdpt", glip_detector, {"num_tokens": 4}), 0.5)
    cache = glip_detector.prefix_cache(0)
    grads = []
    for _ in range(2):  # the first fills the cache, the second replays it
        prompt.zero_grad()
        with cache.replay(batch.inputs), prompt:
            loss, _ = glip_detector.loss(glip_detector.forward(batch), batch)
        loss.backward()
        grads.append(prompt.prototypes.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_learned_text_context_is_not_replayed(glip_detector, shapes_set):
    prompt = build_method("text", glip_detector)
    batch = glip_detector.encode([shapes_set.samples[0].load()], [shapes_set.class_names],
                                 context_tokens=prompt.context_tokens)
    cache = glip_detector.prefix_cache(prompt.first_prompted_layer, cache_text=not prompt.prompts_text_backbone)
    with torch.no_grad(), prompt:
        with cache.replay(batch.inputs):
            first = _predictions(glip_detector, batch)[0]
        prompt.context.data.add_(1.0)
        with cache.replay(batch.inputs):
            second = _predictions(glip_detector, batch)[0]
    assert not torch.equal(first, second)
