"""Prompt injection into the fusion attention: exactness when off, gradients, inverse projections, zero-shot start."""
import pytest
import torch

from sdpt.detector import FusionPromptInjector, FusionPrompts, detection_loss, encode_batch, fusion_attention
from sdpt.methods import build_method


@pytest.fixture(scope="module")
def batch(detector, shapes_set):
    images = [sample.load() for sample in shapes_set.samples[:2]]
    targets = [{"boxes": s.boxes, "classes": s.classes} for s in shapes_set.samples[:2]]
    return encode_batch(detector, images, [shapes_set.class_names] * 2, targets)


def _outputs(detector, batch):
    with torch.no_grad():
        return detector.model(**batch.inputs)


def test_restated_attention_equals_transformers_bit_for_bit(detector):
    attn = detector.fusion_layers[0]
    generator = torch.Generator().manual_seed(0)
    vision = torch.randn(2, 50, attn.vision_dim, generator=generator)
    text = torch.randn(2, 7, attn.text_dim, generator=generator)
    vision_mask = torch.zeros(2, 50, dtype=torch.bool)
    vision_mask[1, 40:] = True
    text_mask = torch.zeros(2, 7, dtype=torch.bool)
    text_mask[0, 5:] = True
    with torch.no_grad():
        expected = attn(vision, text, vision_attention_mask=vision_mask, text_attention_mask=text_mask)
        got = fusion_attention(attn, vision, text, vision_mask, text_mask, prompts=None)
    for (e_out, e_w), (g_out, g_w) in zip(expected, got):
        assert torch.equal(e_out, g_out)
        assert torch.equal(e_w, g_w)


def test_detached_prompt_leaves_the_model_bit_identical(detector, batch):
    before = _outputs(detector, batch)
    prompt = build_method("sdpt", detector, {"gate_init": 0.0})
    with prompt:
        during = _outputs(detector, batch)
    after = _outputs(detector, batch)
    assert not torch.allclose(during.pred_boxes, before.pred_boxes)  # the prompt did act while attached
    assert torch.equal(after.logits, before.logits)
    assert torch.equal(after.pred_boxes, before.pred_boxes)
    assert all("forward" not in attn.__dict__ for attn in detector.fusion_layers)


def test_only_the_prototypes_and_gates_receive_gradients(detector, batch):
    prompt = build_method("sdpt", detector, {"gate_init": -2.0})
    with prompt:
        outputs = detector.model(**batch.inputs)
        loss, _ = detection_loss(detector, outputs, batch)
    loss.backward()
    assert all(p.grad is None for p in detector.model.parameters())
    assert prompt.prototypes.grad is not None and prompt.prototypes.grad.abs().sum() > 0
    assert prompt.gates.grad is not None and prompt.gates.grad.abs().sum() > 0
    assert {name for name, p in prompt.named_parameters()} == {"prototypes", "gates"}


def test_inverse_projection_recovers_prototypes_on_the_row_space(detector):
    prompt = build_method("sdpt", detector)
    for position, index in enumerate(prompt.layer_indices):
        attn = detector.fusion_layers[index]
        for linear, which in ((attn.vision_proj, 0), (attn.text_proj, 1)):
            # Prototypes that lie in the projection's reach: U = b + W x.
            x = torch.randn(prompt.config.num_tokens, linear.in_features, dtype=torch.float64)
            reachable = (linear.bias.double() + x @ linear.weight.double().T).float()
            with torch.no_grad():
                prompt.prototypes.data[position] = reachable
                injected = prompt.injected_tokens(position)[which]
                back = linear(injected)
            assert torch.allclose(back, reachable, atol=1e-4), (index, which)


def test_prompted_model_starts_as_the_zero_shot_model(detector, batch):
    plain = _outputs(detector, batch)
    with build_method("sdpt", detector) as prompt:  # default config
        prompted = _outputs(detector, batch)
    # Fusion matters in this model: an ungated prompt of the same size changes the detections a lot.
    with build_method("sdpt", detector, {"gate_init": 0.0}):
        ungated = _outputs(detector, batch)
    assert (ungated.pred_boxes - plain.pred_boxes).abs().max() > 0.05
    assert prompt.trainable_parameters() > 0
    assert torch.allclose(prompted.pred_boxes, plain.pred_boxes, atol=1e-4)
    assert torch.allclose(prompted.logits.nan_to_num(0), plain.logits.nan_to_num(0), atol=0.05)


def test_released_text_mask_switch_hides_text_prototypes_from_image_queries(detector):
    attn = detector.fusion_layers[0]
    vision = torch.randn(1, 30, attn.vision_dim)
    text = torch.randn(1, 6, attn.text_dim)
    prompts = FusionPrompts(vision=torch.randn(4, attn.vision_dim), text=torch.randn(4, attn.text_dim),
                            gate=torch.tensor(0.0), image_sees_text_prompts=False)
    with torch.no_grad():
        (plain_vision, _), (plain_text, _) = fusion_attention(attn, vision, text)
        (masked_vision, _), (masked_text, _) = fusion_attention(attn, vision, text, prompts=prompts)
        prompts.image_sees_text_prompts = True
        (both_vision, _), _ = fusion_attention(attn, vision, text, prompts=prompts)
    assert torch.allclose(masked_vision, plain_vision, atol=1e-5)  # image tokens do not see the prompts
    assert not torch.allclose(masked_text, plain_text, atol=1e-3)  # text tokens do
    assert not torch.allclose(both_vision, plain_vision, atol=1e-3)


def test_layer_choice_and_shared_sets(detector):
    layers = len(detector.fusion_layers)
    per_layer = build_method("sdpt", detector, {"num_tokens": 3})
    shared = build_method("sdpt", detector, {"num_tokens": 3, "shared": True})
    last = build_method("sdpt", detector, {"num_tokens": 3, "layers": [-1]})
    embed = detector.fusion_layers[0].embed_dim
    assert per_layer.prototypes.shape == (layers, 3, embed)
    assert shared.prototypes.shape == (1, 3, embed)
    assert last.layer_indices == [layers - 1] and last.first_prompted_layer == layers - 1
    assert per_layer.trainable_parameters() == layers * 3 * embed + layers
    assert 0 < per_layer.trainable_fraction() < 0.01


def test_attaching_twice_on_the_same_layer_is_refused(detector):
    first = build_method("sdpt", detector)
    second = build_method("sdpt", detector)
    with first:
        with pytest.raises(RuntimeError, match="already has a prompt"):
            second.attach()


def test_injector_with_no_prompts_is_exact(detector, batch):
    plain = _outputs(detector, batch)
    injector = FusionPromptInjector(detector, range(len(detector.fusion_layers)), lambda index, *inputs: None)
    injector.attach()
    try:
        routed = _outputs(detector, batch)
    finally:
        injector.detach()
    assert torch.equal(routed.logits, plain.logits)
