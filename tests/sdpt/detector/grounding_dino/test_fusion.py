"""Prompt injection into the fusion attention: exactness when off, gradients, inverse projections, zero-shot start."""
import pytest
import torch

from sdpt.detector import FusionPromptInjector, FusionPrompts, detection_loss, encode_batch, fusion_attention
from sdpt.methods import build_method
from tests.prompt_helpers import open_up


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


FUSION_METHODS = ["sdpt", "visual", "dual", "upt", "dpt"]


def test_detached_prompt_leaves_the_model_bit_identical(detector, batch):
    before = _outputs(detector, batch)
    prompt = open_up(build_method("sdpt", detector))
    with prompt:
        during = _outputs(detector, batch)
    after = _outputs(detector, batch)
    assert not torch.allclose(during.pred_boxes, before.pred_boxes)  # the prompt did act while attached
    assert torch.equal(after.logits, before.logits)
    assert torch.equal(after.pred_boxes, before.pred_boxes)
    for block in detector.fusion_blocks:
        assert "forward" not in block.__dict__ and "forward" not in block.attn.__dict__


@pytest.mark.parametrize("name", [m for m in FUSION_METHODS if m != "dpt"])
def test_branch_prompts_start_bit_identical_to_zero_shot(detector, batch, name):
    # DPT is left out: its CoOp text context changes the prompt text from step 0 (it has no gate); its fusion part
    # is covered by the next test.
    plain = _outputs(detector, batch)
    prompt = build_method(name, detector, seed=3)
    assert prompt.config.injection == "branch"
    with prompt:
        prompted = _outputs(detector, batch)
    assert torch.equal(prompted.logits, plain.logits)
    assert torch.equal(prompted.pred_boxes, plain.pred_boxes)


def test_branch_with_closed_scales_adds_exactly_nothing_to_any_fusion_layer(detector):
    # Per-image tokens with padding (DPT's kind) included.
    attn = detector.fusion_layers[0]
    generator = torch.Generator().manual_seed(1)
    vision = torch.randn(2, 30, attn.vision_dim, generator=generator)
    text = torch.randn(2, 6, attn.text_dim, generator=generator)
    padding = torch.zeros(2, 6, dtype=torch.bool)
    padding[1, 4:] = True
    zero = torch.zeros(1)
    prompts = FusionPrompts(vision=torch.randn(2, 6, attn.vision_dim, generator=generator), text=None,
                            vision_padding=padding, branch_scales=(zero, zero))
    updates = []
    with torch.no_grad():
        plain = fusion_attention(attn, vision, text)
        prompted = fusion_attention(attn, vision, text, prompts=prompts, branch_out=updates)
    assert torch.equal(plain[0][0], prompted[0][0]) and torch.equal(plain[1][0], prompted[1][0])
    vision_update, text_update = updates
    assert vision_update is None and torch.equal(text_update, torch.zeros_like(text_update))


def test_branch_is_added_after_the_layer_scale(detector):
    """What the branch adds to a fusion block's output does not depend on the block's layer-scale gamma."""
    block = detector.fusion_blocks[0]
    generator = torch.Generator().manual_seed(2)
    vision = torch.randn(1, 20, block.attn.vision_dim, generator=generator)
    text = torch.randn(1, 5, block.attn.text_dim, generator=generator)
    prompt = open_up(build_method("sdpt", detector, {"layers": [0]}, seed=1), scale=0.5)
    saved = block.vision_param.detach().clone(), block.text_param.detach().clone()
    added = []
    try:
        for gamma in (1e-3, 1.0):
            with torch.no_grad():
                block.vision_param.fill_(gamma)
                block.text_param.fill_(gamma)
                (plain_v, _), (plain_t, _) = block(vision, text)
                with prompt:
                    (prompted_v, _), (prompted_t, _) = block(vision, text)
            added.append((prompted_v - plain_v, prompted_t - plain_t))
    finally:
        with torch.no_grad():
            block.vision_param.copy_(saved[0])
            block.text_param.copy_(saved[1])
    for small, large in zip(*added):
        assert small.abs().max() > 1e-3  # the branch acts...
        assert torch.allclose(small, large, atol=1e-5)  # ...by the same amount whatever gamma is


def test_branch_stream_switches(detector):
    attn = detector.fusion_layers[0]
    vision = torch.randn(1, 30, attn.vision_dim)
    text = torch.randn(1, 6, attn.text_dim)
    half = torch.full((1,), 0.5)
    base = dict(vision=torch.randn(4, attn.vision_dim), text=torch.randn(4, attn.text_dim), branch_scales=(half, half))
    outcomes = {}
    for name, switches in {"both": {}, "text only": {"image_sees_text_prompts": False},
                           "image only": {"text_sees_image_prompts": False}}.items():
        updates = []
        with torch.no_grad():
            fusion_attention(attn, vision, text, prompts=FusionPrompts(**base, **switches), branch_out=updates)
        outcomes[name] = updates
    assert all(u is not None for u in outcomes["both"])
    assert outcomes["text only"][0] is None and torch.equal(outcomes["text only"][1], outcomes["both"][1])
    assert outcomes["image only"][1] is None and torch.equal(outcomes["image only"][0], outcomes["both"][0])


def _reference_branch(attn, queries, tokens_keys, tokens_values, scale, out_proj):
    """The branch written out head by head: each head's softmax over the prompt keys, its answer times the head's
    scale, the heads merged, then the output projection's weight (no bias)."""
    heads, head_dim = attn.num_heads, attn.head_dim
    answers = []
    for head in range(heads):
        part = slice(head * head_dim, (head + 1) * head_dim)
        probs = (queries[..., part] @ tokens_keys[..., part].transpose(-1, -2)).softmax(dim=-1)
        answers.append(probs @ tokens_values[..., part] * scale[head])
    return torch.cat(answers, dim=-1) @ out_proj.weight.T


def test_branch_update_is_each_heads_own_softmax_over_the_prompt_tokens(detector):
    attn = detector.fusion_layers[0]
    generator = torch.Generator().manual_seed(7)
    vision = torch.randn(2, 30, attn.vision_dim, generator=generator)
    text = torch.randn(2, 6, attn.text_dim, generator=generator)
    vision_tokens = torch.randn(5, attn.vision_dim, generator=generator)
    text_tokens = torch.randn(5, attn.text_dim, generator=generator)
    scales = torch.linspace(-0.9, 0.9, attn.num_heads)
    prompts = FusionPrompts(vision=vision_tokens, text=text_tokens, branch_scales=(scales, scales.flip(0)))
    updates = []
    with torch.no_grad():
        fusion_attention(attn, vision, text, prompts=prompts, branch_out=updates)
        image_queries = attn.vision_proj(vision) * attn.scale
        expected_vision = _reference_branch(attn, image_queries, attn.text_proj(text_tokens),
                                            attn.values_text_proj(text_tokens), scales, attn.out_vision_proj)
        expected_text = _reference_branch(attn, attn.text_proj(text), attn.vision_proj(vision_tokens) * attn.scale,
                                          attn.values_vision_proj(vision_tokens), scales.flip(0), attn.out_text_proj)
    assert torch.allclose(updates[0], expected_vision, atol=1e-5)
    assert torch.allclose(updates[1], expected_text, atol=1e-5)


def test_per_head_scales_equal_one_scale_when_all_heads_agree(detector, batch):
    layer = build_method("sdpt", detector, {"per_head_scales": False}, seed=4)
    heads = build_method("sdpt", detector, seed=4)  # per head: SDPT's default
    assert layer.branch_scales.shape == (len(detector.fusion_layers), 2, 1)
    assert heads.branch_scales.shape == (len(detector.fusion_layers), 2, detector.fusion_layers[0].num_heads)
    with open_up(layer, 0.3):
        one = _outputs(detector, batch)
    with open_up(heads, 0.3):
        many = _outputs(detector, batch)
        with torch.no_grad():
            heads.branch_scales[:, :, 0] = 0.0  # silence one head: the output changes
        fewer = _outputs(detector, batch)
    assert torch.allclose(one.pred_boxes, many.pred_boxes, atol=1e-5)
    assert not torch.allclose(many.pred_boxes, fewer.pred_boxes, atol=1e-5)


def test_branch_gradients_reach_the_scales_first_then_the_prototypes(detector, batch):
    prompt = build_method("sdpt", detector, seed=5)
    with prompt:
        loss, _ = detection_loss(detector, detector.model(**batch.inputs), batch)
    loss.backward()
    assert all(p.grad is None for p in detector.model.parameters())
    assert prompt.branch_scales.grad.abs().sum() > 0  # d tanh(s) x / ds = x at s = 0
    assert prompt.prototypes.grad.abs().sum() == 0  # tanh(0) = 0 blocks them at the very start
    torch.optim.SGD(prompt.parameters(), lr=0.1).step()  # one step opens the scales
    prompt.zero_grad()
    with prompt:
        loss, _ = detection_loss(detector, detector.model(**batch.inputs), batch)
    loss.backward()
    assert prompt.prototypes.grad.abs().sum() > 0
    assert {name for name, _ in prompt.named_parameters()} == {"prototypes", "branch_scales"}


def test_shared_gate_injection_starts_as_zero_shot_and_trains_its_gates(detector, batch):
    plain = _outputs(detector, batch)
    with build_method("sdpt", detector, {"injection": "shared_gate"}) as prompt:  # gate at -10
        prompted = _outputs(detector, batch)
    assert torch.allclose(prompted.pred_boxes, plain.pred_boxes, atol=1e-4)
    prompt = build_method("sdpt", detector, {"injection": "shared_gate", "gate_init": -2.0})
    with prompt:
        loss, _ = detection_loss(detector, detector.model(**batch.inputs), batch)
    loss.backward()
    assert prompt.prototypes.grad.abs().sum() > 0 and prompt.gates.grad.abs().sum() > 0
    assert {name for name, _ in prompt.named_parameters()} == {"prototypes", "gates"}


def test_paper_injection_has_no_gate_and_acts_from_the_start(detector, batch):
    plain = _outputs(detector, batch)
    with build_method("sdpt", detector, {"injection": "paper"}) as prompt:
        prompted = _outputs(detector, batch)
    assert {name for name, _ in prompt.named_parameters()} == {"prototypes"}
    assert (prompted.pred_boxes - plain.pred_boxes).abs().max() > 0.05  # fusion matters in this model


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


def test_released_text_mask_switch_hides_text_prototypes_from_image_queries(detector):
    attn = detector.fusion_layers[0]
    vision = torch.randn(1, 30, attn.vision_dim)
    text = torch.randn(1, 6, attn.text_dim)
    # The appended (shared-gate) injection.
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
    heads = detector.fusion_layers[0].num_heads
    assert per_layer.trainable_parameters() == layers * 3 * embed + 2 * heads * layers  # + branch scales per head
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
