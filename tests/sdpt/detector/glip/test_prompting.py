"""Prompt tokens inside GLIP's fusion attention: exact when off, a literal restatement of the appended ("paper") tokens,
the text-mask switch and vision padding, the gate, the branch after the layer scale, attach/detach, checkpointing."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sdpt.detector.fusion_prompts import FusionPrompts, prompt_branch
from sdpt.detector.glip.detector import GlipDetector
from sdpt.detector.glip.fusion import BiAttentionBlock, BiMultiHeadAttention, VLFuse, flatten_levels
from sdpt.detector.glip.model import GlipConfig, GlipModel
from sdpt.detector.glip.prompting import GlipPromptInjector, prompted_attention

V_DIM, L_DIM, EMBED, HEADS = 16, 24, 32, 4


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Nonzero biases, non-trivial layer norms and layer scales, so a misplaced bias, norm or gamma shows up."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith(("gamma_v", "gamma_l")):
                param.copy_(0.5 + torch.rand(param.shape, generator=generator))
            elif "layer_norm" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.3 * torch.randn(param.shape, generator=generator))
            else:
                param.copy_(0.3 * torch.randn(param.shape, generator=generator))


@pytest.fixture(scope="module")
def glip():
    torch.manual_seed(0)
    model = GlipModel(GlipConfig.tiny())
    for fuse in model.rpn.head.fusion_layers:
        _randomise(fuse.b_attn)
    return GlipDetector(model, tokenizer=None)  # frozen, eval mode


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 64, 96, generator=generator)
    ids = torch.randint(1, 1000, (2, 8), generator=generator)
    mask = torch.ones(2, 8, dtype=torch.long)  # the tokenizer's int64 mask, as GLIP passes it
    mask[1, 6:] = 0
    return images, ids, mask


def _outputs(glip, inputs) -> list[torch.Tensor]:
    p = glip.model(*inputs).predictions
    return [*p.box_regression, *p.centerness, p.dot_product_logits]


def _plain(glip, inputs) -> list[torch.Tensor]:
    with torch.no_grad():
        return _outputs(glip, inputs)


def _all_equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _attention(stable: bool = False) -> BiMultiHeadAttention:
    attn = BiMultiHeadAttention(V_DIM, L_DIM, EMBED, HEADS, stable_softmax_2d=stable).eval().double()
    _randomise(attn, seed=2)
    return attn


def _streams(batch: int = 2, num_v: int = 11, num_l: int = 6):
    generator = torch.Generator().manual_seed(3)
    v = torch.randn(batch, num_v, V_DIM, generator=generator, dtype=torch.float64)
    l = torch.randn(batch, num_l, L_DIM, generator=generator, dtype=torch.float64)
    mask = torch.ones(batch, num_l, dtype=torch.long)
    mask[0, 4:] = 0
    return v, l, mask


def _per_image(tokens, batch):
    return tokens.unsqueeze(0).expand(batch, -1, -1) if tokens.dim() == 2 else tokens


def _reference(attn, v, l, mask, extra_v=None, extra_l=None, hide_text=False, vision_padding=None, gate=None):
    """GLIP's attention written out on the concatenated streams (masks as -inf fills, gate as a count of prompt
    tokens per score), the prompt positions cut off at the end."""
    batch, num_v, num_l = v.shape[0], v.shape[1], l.shape[1]
    real_l = (mask != 0) if mask is not None else torch.ones(batch, num_l, dtype=torch.bool)
    seen_v = torch.ones(batch, num_v, dtype=torch.bool)
    if extra_v is not None:
        v = torch.cat([v, _per_image(extra_v, batch)], dim=1)
        pad = vision_padding if vision_padding is not None else torch.zeros(batch, extra_v.shape[-2], dtype=torch.bool)
        seen_v = torch.cat([seen_v, ~pad], dim=1)
    if extra_l is not None:
        l = torch.cat([l, _per_image(extra_l, batch)], dim=1)
        real_l = torch.cat([real_l, torch.full((batch, extra_l.shape[-2]), not hide_text)], dim=1)
    p = dict(attn.named_parameters())
    head_dim = EMBED // HEADS

    def project(x, name):  # -> (B, heads, N, head_dim)
        y = x @ p[f"{name}.weight"].T + p[f"{name}.bias"]
        return y.view(batch, -1, HEADS, head_dim).permute(0, 2, 1, 3)

    scores = (project(v, "v_proj") * head_dim ** -0.5) @ project(l, "l_proj").transpose(-1, -2)  # (B, H, Tv, Tl)
    if gate is not None:
        rows = (torch.arange(v.shape[1]) >= num_v).double()
        cols = (torch.arange(l.shape[1]) >= num_l).double()
        scores = scores + gate * (rows[:, None] + cols[None, :])
    scores = scores.clamp(-50000, 50000)
    text_scores = scores.transpose(-1, -2)
    text_scores = (text_scores - text_scores.max(dim=-1, keepdim=True).values).clamp(-50000, 50000)
    text_probs = text_scores.masked_fill(~seen_v[:, None, None, :], float("-inf")).softmax(dim=-1)
    image_probs = scores.masked_fill(~real_l[:, None, None, :], float("-inf")).softmax(dim=-1)
    attended_v = (image_probs @ project(l, "values_l_proj")).permute(0, 2, 1, 3).reshape(batch, -1, EMBED)
    attended_l = (text_probs @ project(v, "values_v_proj")).permute(0, 2, 1, 3).reshape(batch, -1, EMBED)
    delta_v = attended_v @ p["out_v_proj.weight"].T + p["out_v_proj.bias"]
    delta_l = attended_l @ p["out_l_proj.weight"].T + p["out_l_proj.bias"]
    return delta_v[:, :num_v], delta_l[:, :num_l]


def _close(got, want, tolerance=1e-10):
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("stable", [False, True])
def test_without_prompts_it_is_the_modules_own_forward_bit_for_bit(stable):
    attn = _attention(stable)
    v, l, mask = _streams()
    with torch.no_grad():
        for text_mask in (mask, None):
            assert _all_equal(prompted_attention(attn, v, l, text_mask), attn(v, l, text_mask))
            zero = torch.zeros(1)
            branch = FusionPrompts(vision=torch.randn(3, V_DIM), text=torch.randn(3, L_DIM), branch_scales=(zero, zero))
            assert _all_equal(prompted_attention(attn, v, l, text_mask, branch, []), attn(v, l, text_mask))
    with pytest.raises(ValueError, match="branch_out"):
        prompted_attention(attn, v, l, mask, branch)


def test_host_neutral_names_are_aliases_that_add_no_state():
    attn = _attention()
    pairs = {"vision_proj": "v_proj", "text_proj": "l_proj", "values_vision_proj": "values_v_proj",
             "values_text_proj": "values_l_proj", "out_vision_proj": "out_v_proj", "out_text_proj": "out_l_proj"}
    assert all(getattr(attn, alias) is getattr(attn, name) for alias, name in pairs.items())
    assert (attn.vision_dim, attn.text_dim) == (V_DIM, L_DIM)
    assert {name for name, _ in attn.named_modules()} == {""} | set(pairs.values())
    assert not any(key.startswith(tuple(pairs)) for key in attn.state_dict())


def test_injector_with_no_prompts_is_exact_and_detach_restores(glip, inputs):
    plain = _plain(glip, inputs)
    calls = []

    def prompts_for(index, v, l, mask):
        calls.append((index, v.shape, l.shape, mask))
        return None

    layers = list(range(len(glip.model.rpn.head.fusion_layers)))
    injector = GlipPromptInjector(glip, layers, prompts_for)
    injector.attach()
    assert injector.attached
    routed = _plain(glip, inputs)
    injector.detach()
    assert _all_equal(routed, plain) and _all_equal(_plain(glip, inputs), plain)
    assert [c[0] for c in calls] == layers
    assert all(c[3].dtype == torch.bool and torch.equal(c[3], inputs[2] == 0) for c in calls)  # True = padding
    assert all(c[2] == (2, 8, glip.config.bert["hidden_size"]) for c in calls)
    assert not injector.attached
    assert all("forward" not in fuse.b_attn.__dict__ for fuse in glip.model.rpn.head.fusion_layers)


def test_paper_tokens_match_a_literal_restatement_and_the_blocks_own_entry_point():
    attn = _attention()
    v, l, mask = _streams()
    generator = torch.Generator().manual_seed(4)
    extra_v = torch.randn(3, V_DIM, generator=generator, dtype=torch.float64, requires_grad=True)
    extra_l = torch.randn(2, 2, L_DIM, generator=generator, dtype=torch.float64, requires_grad=True)
    got = prompted_attention(attn, v, l, mask, FusionPrompts(vision=extra_v, text=extra_l))
    with torch.no_grad():
        _close(got, _reference(attn, v, l, mask, extra_v, extra_l))
        _close(prompted_attention(attn, v, l, None, FusionPrompts(vision=extra_v, text=extra_l)),
               _reference(attn, v, l, None, extra_v, extra_l))
        block = BiAttentionBlock(V_DIM, L_DIM, EMBED, HEADS).eval().double()
        block.attn = attn
        assert _all_equal(got, block.attend(v, l, mask, extra_v, extra_l))
        assert not torch.allclose(got[0], attn(v, l, mask)[0])
    (got[0].sum() + got[1].square().sum()).backward()
    assert extra_v.grad.abs().sum() > 0 and extra_l.grad.abs().sum() > 0


def test_hidden_text_prompts_are_invisible_to_image_queries_only():
    attn = _attention()
    v, l, mask = _streams()
    generator = torch.Generator().manual_seed(5)
    extra_v = torch.randn(3, V_DIM, generator=generator, dtype=torch.float64)
    extra_l = torch.randn(4, L_DIM, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        for text_mask in (mask, None):
            hidden = prompted_attention(attn, v, l, text_mask, FusionPrompts(extra_v, extra_l,
                                                                             image_sees_text_prompts=False))
            _close(hidden, _reference(attn, v, l, text_mask, extra_v, extra_l, hide_text=True))
            vision_only = prompted_attention(attn, v, l, text_mask, FusionPrompts(extra_v, None))
            torch.testing.assert_close(hidden[0], vision_only[0], rtol=1e-10, atol=1e-10)  # image side: as if absent
            plain = attn(v, l, text_mask)
            assert not torch.allclose(hidden[1], plain[1], atol=1e-3)  # text tokens still read the vision prompts


def test_padded_vision_prompts_are_never_seen_by_text_queries():
    attn = _attention()
    v, l, mask = _streams()
    generator = torch.Generator().manual_seed(6)
    extra_v = torch.randn(2, 3, V_DIM, generator=generator, dtype=torch.float64)  # per image, as DPT's
    padding = torch.tensor([[False, False, True], [False, True, True]])
    with torch.no_grad():
        got = prompted_attention(attn, v, l, mask, FusionPrompts(extra_v, None, vision_padding=padding))
        _close(got, _reference(attn, v, l, mask, extra_v, vision_padding=padding))
        changed = extra_v.clone()
        changed[padding] = 5.0 * torch.randn(int(padding.sum()), V_DIM, dtype=torch.float64)
        again = prompted_attention(attn, v, l, mask, FusionPrompts(changed, None, vision_padding=padding))
        _close(again, got)  # what stands in a padded slot does not matter
        for image, kept in ((0, 2), (1, 1)):  # each image as if it had only its real tokens
            alone = prompted_attention(attn, v[image:image + 1], l[image:image + 1], mask[image:image + 1],
                                       FusionPrompts(extra_v[image:image + 1, :kept], None))
            _close([got[0][image:image + 1], got[1][image:image + 1]], alone)
        unpadded = prompted_attention(attn, v, l, mask, FusionPrompts(extra_v, None))
        assert not torch.allclose(unpadded[1], got[1], atol=1e-3)  # the padding did act


def test_shared_gate_counts_prompt_tokens_and_a_closed_gate_silences_them():
    attn = _attention()
    v, l, mask = _streams()
    generator = torch.Generator().manual_seed(7)
    extra_v = torch.randn(3, V_DIM, generator=generator, dtype=torch.float64)
    extra_l = torch.randn(3, L_DIM, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        gate = torch.tensor(-1.5)
        _close(prompted_attention(attn, v, l, mask, FusionPrompts(extra_v, extra_l, gate=gate)),
               _reference(attn, v, l, mask, extra_v, extra_l, gate=-1.5))
        assert _all_equal(prompted_attention(attn, v, l, mask, FusionPrompts(extra_v, extra_l, gate=torch.tensor(0.0))),
                          prompted_attention(attn, v, l, mask, FusionPrompts(extra_v, extra_l)))
        closed = prompted_attention(attn, v, l, mask, FusionPrompts(extra_v, extra_l, gate=torch.tensor(-60.0)))
        _close(closed, attn(v, l, mask), tolerance=1e-8)


def test_per_text_token_vision_prompts_follow_the_text_padding_through_the_injector(glip, inputs):
    """DPT's kind: one vision token per text token, padded where the text is (prompts_for's padding, True = pad)."""
    plain = _plain(glip, inputs)
    generator = torch.Generator().manual_seed(14)
    tokens = torch.randn(2, 8, glip.model.rpn.head.fusion_layers[0].b_attn.attn.vision_dim, generator=generator)
    current = {"tokens": tokens}
    injector = GlipPromptInjector(glip, [0, 1], lambda index, v, l, padding: FusionPrompts(
        current["tokens"], None, vision_padding=padding))
    injector.attach()
    try:
        prompted = _plain(glip, inputs)
        current["tokens"] = tokens.clone()
        current["tokens"][inputs[2] == 0] = 3.0 * torch.randn(int((inputs[2] == 0).sum()), tokens.shape[-1])
        changed_padding = _plain(glip, inputs)
    finally:
        injector.detach()
    assert not torch.allclose(prompted[-1], plain[-1], atol=1e-4)  # the real tokens act...
    for a, b in zip(prompted, changed_padding, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # ...the padded ones do not


def _branch_prompts(glip, scale: float, seed: int = 8, per_head: bool = True):
    attn = glip.model.rpn.head.fusion_layers[0].b_attn.attn
    generator = torch.Generator().manual_seed(seed)
    tokens = (torch.randn(3, attn.vision_dim, generator=generator).requires_grad_(),
              torch.randn(3, attn.text_dim, generator=generator).requires_grad_())
    shape = (attn.num_heads,) if per_head else (1,)
    scales = (torch.full(shape, scale, requires_grad=True), torch.full(shape, scale, requires_grad=True))
    return tokens, scales, lambda index, *streams: FusionPrompts(*tokens, branch_scales=scales)


def test_branch_with_zero_scales_is_exactly_zero_shot_and_opened_it_trains(glip, inputs):
    plain = _plain(glip, inputs)
    layers = range(len(glip.model.rpn.head.fusion_layers))
    _, _, closed = _branch_prompts(glip, 0.0)
    injector = GlipPromptInjector(glip, layers, closed)
    injector.attach()
    try:
        assert _all_equal(_plain(glip, inputs), plain)
    finally:
        injector.detach()
    tokens, scales, opened = _branch_prompts(glip, 0.4)
    injector = GlipPromptInjector(glip, layers, opened)
    injector.attach()
    try:
        prompted = _outputs(glip, inputs)
    finally:
        injector.detach()
    assert not torch.allclose(prompted[-1], plain[-1], atol=1e-4)
    sum(out.square().sum() for out in prompted).backward()
    assert all(t.grad.abs().sum() > 0 for t in tokens) and all(s.grad.abs().sum() > 0 for s in scales)
    assert all(p.grad is None for p in glip.model.parameters())


def _fake_detector(fuses: list[VLFuse]):
    return SimpleNamespace(model=SimpleNamespace(rpn=SimpleNamespace(head=SimpleNamespace(fusion_layers=fuses))))


def test_branch_is_added_after_the_layer_scale_and_drop_path():
    fuse = VLFuse(V_DIM, L_DIM, EMBED, HEADS, drop_path=0.5).eval()  # drop path is the identity in eval
    _randomise(fuse, seed=9)
    block = fuse.b_attn
    generator = torch.Generator().manual_seed(10)
    v, l = torch.randn(2, 13, V_DIM, generator=generator), torch.randn(2, 5, L_DIM, generator=generator)
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[1, 3:] = 0
    scales = (torch.linspace(-0.8, 0.8, HEADS), torch.full((1,), 0.6))
    prompts = FusionPrompts(torch.randn(4, V_DIM, generator=generator), torch.randn(4, L_DIM, generator=generator),
                            branch_scales=scales)
    injector = GlipPromptInjector(_fake_detector([fuse]), [0], lambda *args: prompts)
    added = []
    with torch.no_grad():
        for gamma in (1e-3, 1.0):
            block.gamma_v.fill_(gamma)
            block.gamma_l.fill_(gamma)
            plain = block(v, l, mask)
            injector.attach()
            prompted = block(v, l, mask)
            injector.detach()
            added.append([p - q for p, q in zip(prompted, plain)])
        attn = block.attn
        normed_v, normed_l = block.layer_norm_v(v), block.layer_norm_l(l)
        keys = attn._split_heads(attn.l_proj(normed_l))
        expected = prompt_branch(attn, normed_v, keys, prompts, 2)
    for small, large, want in zip(*added, expected):
        assert small.abs().max() > 1e-3  # the branch acts...
        torch.testing.assert_close(small, large, rtol=0, atol=1e-5)  # ...by the same amount whatever gamma is
        torch.testing.assert_close(large, want, rtol=0, atol=1e-5)  # ...and that amount is prompt_branch's


def test_attaching_twice_is_refused_and_detach_gives_the_modules_back(glip, inputs):
    fuses = glip.model.rpn.head.fusion_layers
    keys = list(glip.model.state_dict())
    first = GlipPromptInjector(glip, [1], lambda *args: None)
    second = GlipPromptInjector(glip, [0, 1], lambda *args: None)
    first.attach()
    first.attach()  # the same injector again: nothing happens
    try:
        with pytest.raises(RuntimeError, match="layer 1 already has a prompt attached"):
            second.attach()
        assert not second.attached and "forward" not in fuses[0].b_attn.__dict__  # nothing half attached
    finally:
        first.detach()
    assert all(set(fuse.b_attn.__dict__) == set(BiAttentionBlock(8, 8, 8, 2).__dict__) for fuse in fuses)
    assert list(glip.model.state_dict()) == keys
    second.attach()  # free again
    second.detach()
    assert all("forward" not in fuse.b_attn.__dict__ for fuse in fuses)


def test_extra_tokens_still_work_but_not_together_with_injected_prompts():
    fuse = VLFuse(V_DIM, L_DIM, EMBED, HEADS).eval()
    _randomise(fuse, seed=11)
    maps = [torch.randn(1, V_DIM, 3, 4), torch.randn(1, V_DIM, 2, 2)]
    features = {"visual": maps, "lang": {"hidden": torch.randn(1, 5, L_DIM), "masks": torch.ones(1, 5)}}
    extra_v = torch.randn(2, V_DIM)
    with torch.no_grad():
        plain = fuse(features, extra_v=extra_v)
        injector = GlipPromptInjector(_fake_detector([fuse]), [0], lambda *args: None)
        injector.attach()
        routed = fuse(features, extra_v=extra_v)
        injector.prompts_for = lambda *args: FusionPrompts(extra_v, None)
        with pytest.raises(ValueError, match="extra tokens and injector prompts"):
            fuse(features, extra_v=extra_v)
        injector.detach()
    assert all(torch.equal(a, b) for a, b in zip(plain["visual"], routed["visual"]))


def test_checkpointed_training_matches_plain_training_with_prompts():
    generator = torch.Generator().manual_seed(12)
    maps = [torch.randn(2, V_DIM, 4, 5, generator=generator), torch.randn(2, V_DIM, 2, 3, generator=generator)]
    lang = {"hidden": torch.randn(2, 6, L_DIM, generator=generator), "masks": torch.ones(2, 6, dtype=torch.long)}
    lang["masks"][1, 4:] = 0
    base_v, base_l = torch.randn(3, V_DIM, generator=generator), torch.randn(3, L_DIM, generator=generator)
    results = []
    for use_checkpoint in (False, True):
        fuse = VLFuse(V_DIM, L_DIM, EMBED, HEADS, dropout=0.0, use_checkpoint=use_checkpoint).train()
        _randomise(fuse, seed=13)
        fuse.requires_grad_(False)
        tokens = (base_v.clone().requires_grad_(), base_l.clone().requires_grad_())
        calls = []
        injector = GlipPromptInjector(_fake_detector([fuse]), [0],
                                      lambda *args: calls.append(1) or FusionPrompts(*tokens, gate=torch.tensor(0.5)))
        injector.attach()
        out = fuse({"visual": maps, "lang": lang})
        (flatten_levels(out["visual"])[0].square().sum() + out["lang"]["hidden"].sum()).backward()
        injector.detach()
        results.append((out["lang"]["hidden"].detach(), tokens[0].grad, tokens[1].grad, len(calls)))
    assert torch.equal(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
    torch.testing.assert_close(results[0][2], results[1][2])
    assert results[0][3] == 1 and results[1][3] == 2  # checkpointing recomputes the patched block, prompts included
