"""Every prompt method, through the same interface: starts as the zero-shot model, trains only its own tensors,
round-trips through a prompt file, and reports its trainable parameters."""
import pytest
import torch

from sdpt.detector import detection_loss, encode_batch
from sdpt.inference import detect
from sdpt.methods import METHODS, build_method
from sdpt.config import TrainConfig
from sdpt.prompt_io import load_prompt, save_prompt
from sdpt.train import tune
from tests.prompt_helpers import open_up

PROMPT_METHODS = sorted(name for name in METHODS if name != "full")


@pytest.fixture(scope="module")
def batch(detector, shapes_set):
    samples = shapes_set.samples[:2]
    return encode_batch(detector, [s.load() for s in samples], [shapes_set.class_names] * 2,
                        [{"boxes": s.boxes, "classes": s.classes} for s in samples])


@pytest.mark.parametrize("name", PROMPT_METHODS)
def test_starts_as_zero_shot_and_trains_only_itself(detector, shapes_set, batch, name):
    with torch.no_grad():
        plain = detector.model(**batch.inputs)
    prompt = build_method(name, detector)
    if prompt.context_tokens:  # learned text context changes the prompt text from step 0 (CoOp has no gate)
        samples = shapes_set.samples[:2]
        batch = encode_batch(detector, [s.load() for s in samples], [shapes_set.class_names] * 2,
                             [{"boxes": s.boxes, "classes": s.classes} for s in samples],
                             context_tokens=prompt.context_tokens)
    else:
        with prompt, torch.no_grad():
            start = detector.model(**batch.inputs)
        assert torch.allclose(start.pred_boxes, plain.pred_boxes, atol=1e-4)
    open_up(prompt, 0.1)  # as after a first step: a closed branch (tanh(0) = 0) passes no gradient to its tokens
    with prompt:
        loss, _ = detection_loss(detector, detector.model(**batch.inputs), batch)
    loss.backward()
    assert all(p.grad is None for p in detector.model.parameters())
    grads = {n: p.grad for n, p in prompt.named_parameters() if p.requires_grad}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values()), name
    assert 0 < prompt.trainable_parameters() < 0.05 * detector.parameter_count()


@pytest.mark.parametrize("name", PROMPT_METHODS + ["full"])
def test_prompt_file_round_trip(detector, shapes_set, tmp_path, name):
    prompt = build_method(name, detector)
    with torch.no_grad():
        for param in prompt.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    open_up(prompt)  # open, so the tokens matter
    images = [s.path for s in shapes_set.samples[:2]]
    before = detect(detector, images, shapes_set.class_names, prompt, threshold=0.0, top_k=10)
    loaded, _ = load_prompt(save_prompt(prompt, tmp_path / name, shapes_set.class_names), detector)
    after = detect(detector, images, shapes_set.class_names, loaded, threshold=0.0, top_k=10)
    for a, b in zip(before, after):
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores)
    zero_shot = detect(detector, images, shapes_set.class_names, None, threshold=0.0, top_k=10)
    assert any(not torch.equal(a.scores, z.scores) for a, z in zip(after, zero_shot))


def test_parameter_counts_follow_the_design(detector):
    vision_dim, text_dim, embed_dim = (detector.fusion_layers[0].vision_dim, detector.fusion_layers[0].text_dim,
                                       detector.fusion_layers[0].embed_dim)
    layers, tokens = len(detector.fusion_layers), 10
    # + 2 branch scales per layer (image and text stream); the shared gate had 1.
    heads = detector.fusion_layers[0].num_heads
    # SDPT's default: a branch scale per head and stream, 20 prototypes (benchmarks/default_choice.py); the others:
    # per stream.
    assert build_method("sdpt", detector).trainable_parameters() == layers * (20 * embed_dim + 2 * heads)
    assert build_method("sdpt", detector, {"num_tokens": tokens, "per_head_scales": False}).trainable_parameters() == (
        layers * (tokens * embed_dim + 2))
    gated = build_method("sdpt", detector, {"num_tokens": tokens, "injection": "shared_gate"})
    assert gated.trainable_parameters() == layers * (tokens * embed_dim + 1)
    assert build_method("visual", detector).trainable_parameters() == layers * (tokens * vision_dim + 2)
    assert build_method("dual", detector).trainable_parameters() == layers * (tokens * (vision_dim + text_dim) + 2)
    assert build_method("full", detector).trainable_parameters() == detector.parameter_count()
    assert build_method("text", detector).trainable_parameters() == 4 * detector.config.text_config.hidden_size


def test_text_context_placeholders_sit_inside_each_phrase(detector, shapes_set):
    prompt = build_method("text", detector)
    batch = encode_batch(detector, [shapes_set.samples[0].load()], [shapes_set.class_names],
                         context_tokens=prompt.context_tokens)
    ids = batch.inputs["input_ids"][0].tolist()
    assert ids.count(103) == prompt.context_tokens * len(shapes_set.class_names)
    assert all(ids[p] != 103 for p in batch.phrase_maps[0].nonzero()[:, 1].tolist())  # scores use names only
    result = tune(detector, shapes_set, prompt, TrainConfig(steps=2, batch_size=2))
    assert len(result.history) == 2 and prompt.context.grad is not None


def test_box_init_starts_sdpt_from_the_examples_and_still_as_zero_shot(detector, shapes_set, batch):
    from sdpt.train import tune

    prompt = build_method("sdpt", detector, {"init": "boxes", "layers": [-1]})
    uniform = prompt.prototypes.detach().clone()
    prompt.prepare(shapes_set, [s.load() for s in shapes_set.samples])
    boxes = shapes_set.num_boxes()
    changed = (prompt.prototypes != uniform).any(dim=-1)
    assert changed.sum().item() == min(boxes, prompt.config.num_tokens)  # the rest keep their uniform init
    assert not torch.equal(prompt.prototypes, uniform)
    with torch.no_grad():
        plain = detector.model(**batch.inputs)
        with prompt:
            start = detector.model(**batch.inputs)
    assert torch.allclose(start.pred_boxes, plain.pred_boxes, atol=1e-4)
    # tune() calls prepare on a fresh run: the same seed gives the same box-initialised tokens
    fresh = build_method("sdpt", detector, {"init": "boxes", "layers": [-1]})
    result = tune(detector, shapes_set, fresh, TrainConfig(steps=1, batch_size=2))
    assert result.finished and not torch.equal(fresh.prototypes, uniform)
