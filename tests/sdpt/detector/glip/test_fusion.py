"""GLIP's fusion block: checkpoint keys, parity with a plain restatement of the official forward, layer scale,
text padding, and the prompt-token entry point."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sdpt.detector.glip.fusion import BiAttentionBlock, BiMultiHeadAttention, VLFuse, flatten_levels, unflatten_levels

# The key list of the official glip_tiny_model_o365_goldg.pth (a copy of the team's reference list).
REFERENCE = Path(__file__).with_name("fixtures") / "glip_t_expected_keys.txt"
B_ATTN_PREFIX = "module.rpn.head.dyhead_tower.0.b_attn."
# The same 16 entries, kept here so the check also runs where the reference file is absent.
GLIP_T_B_ATTN_SHAPES = {
    "gamma_v": (256,), "gamma_l": (768,),
    "layer_norm_v.weight": (256,), "layer_norm_v.bias": (256,),
    "layer_norm_l.weight": (768,), "layer_norm_l.bias": (768,),
    "attn.v_proj.weight": (2048, 256), "attn.v_proj.bias": (2048,),
    "attn.l_proj.weight": (2048, 768), "attn.l_proj.bias": (2048,),
    "attn.values_v_proj.weight": (2048, 256), "attn.values_v_proj.bias": (2048,),
    "attn.values_l_proj.weight": (2048, 768), "attn.values_l_proj.bias": (2048,),
    "attn.out_v_proj.weight": (256, 2048), "attn.out_v_proj.bias": (256,),
    "attn.out_l_proj.weight": (768, 2048), "attn.out_l_proj.bias": (768,),
}

V_DIM, L_DIM, EMBED, HEADS = 16, 24, 32, 4
LEVEL_SIZES = [(6, 5), (3, 3), (2, 2), (1, 2), (1, 1)]
NUM_TEXT = 7


def _small_fuse(**kwargs) -> VLFuse:
    return VLFuse(v_dim=V_DIM, l_dim=L_DIM, embed_dim=EMBED, num_heads=HEADS, **kwargs)


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Nonzero biases and non-trivial layer norms, so that a misplaced bias or norm shows up."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("gamma_v") or name.endswith("gamma_l"):
                param.copy_(0.5 + torch.rand(param.shape, generator=generator))
            elif "layer_norm" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.3 * torch.randn(param.shape, generator=generator))
            else:
                param.copy_(0.3 * torch.randn(param.shape, generator=generator))


def _inputs(seed: int = 1, batch: int = 2) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    maps = [torch.randn(batch, V_DIM, h, w, generator=generator) for h, w in LEVEL_SIZES]
    hidden = torch.randn(batch, NUM_TEXT, L_DIM, generator=generator)
    masks = torch.ones(batch, NUM_TEXT, dtype=torch.long)  # GLIP passes the tokenizer's int64 attention mask
    masks[0, 4:] = 0
    if batch > 1:
        masks[1, 6:] = 0
    return maps, hidden, masks


def _glip_reference(p: dict[str, torch.Tensor], maps: list[torch.Tensor], hidden: torch.Tensor, masks: torch.Tensor,
                     heads: int, clamp: bool = True) -> tuple[list[torch.Tensor], torch.Tensor]:
    """GLIP's MHA-B fusion stage written out as tensor ops, with the weights read from a state dict."""
    batch, channels = maps[0].shape[:2]
    v = torch.cat([m.permute(0, 2, 3, 1).reshape(batch, -1, channels) for m in maps], dim=1)
    v = F.layer_norm(v, (channels,), p["layer_norm_v.weight"], p["layer_norm_v.bias"], eps=1e-5)
    l = F.layer_norm(hidden, (hidden.shape[-1],), p["layer_norm_l.weight"], p["layer_norm_l.bias"], eps=1e-5)
    embed = p["attn.v_proj.weight"].shape[0]
    head_dim = embed // heads

    def project(x, name):  # -> (B, heads, N, head_dim)
        y = x @ p[f"attn.{name}.weight"].T + p[f"attn.{name}.bias"]
        return y.view(batch, -1, heads, head_dim).permute(0, 2, 1, 3)

    q = project(v, "v_proj") * head_dim ** -0.5
    k = project(l, "l_proj")
    value_v = project(v, "values_v_proj")
    value_l = project(l, "values_l_proj")
    scores = q @ k.transpose(-1, -2)  # (B, heads, Nv, Nl)
    if clamp:
        scores = scores.clamp(-50000, 50000)
    text_scores = scores.transpose(-1, -2)
    text_scores = text_scores - text_scores.max(dim=-1, keepdim=True).values
    if clamp:
        text_scores = text_scores.clamp(-50000, 50000)
    text_probs = text_scores.softmax(dim=-1)
    mask_bias = torch.where(masks == 0, -9e15, masks.to(hidden.dtype))  # real tokens keep +1, as in GLIP
    image_probs = (scores + mask_bias[:, None, None, :]).softmax(dim=-1)
    attended_v = (image_probs @ value_l).permute(0, 2, 1, 3).reshape(batch, -1, embed)
    attended_l = (text_probs @ value_v).permute(0, 2, 1, 3).reshape(batch, -1, embed)
    delta_v = attended_v @ p["attn.out_v_proj.weight"].T + p["attn.out_v_proj.bias"]
    delta_l = attended_l @ p["attn.out_l_proj.weight"].T + p["attn.out_l_proj.bias"]
    v = v + p["gamma_v"] * delta_v  # the residual starts from the layer-normed features
    l = l + p["gamma_l"] * delta_l
    out_maps, start = [], 0
    for m in maps:
        h, w = m.shape[2:]
        out_maps.append(v[:, start:start + h * w].permute(0, 2, 1).reshape(batch, channels, h, w))
        start += h * w
    return out_maps, l


def _run(fuse: VLFuse, maps, hidden, masks, **kwargs) -> dict:
    with torch.no_grad():
        return fuse({"visual": maps, "lang": {"hidden": hidden, "masks": masks}}, **kwargs)


def test_glip_t_keys_and_shapes_match_the_official_checkpoint():
    expected = {B_ATTN_PREFIX + name: shape for name, shape in GLIP_T_B_ATTN_SHAPES.items()}
    listed = {}
    for line in REFERENCE.read_text().splitlines():
        name, _, shape = line.partition(" ")
        if name.startswith(B_ATTN_PREFIX):
            listed[name] = tuple(ast.literal_eval(shape))
    assert listed == expected
    fuse = VLFuse()
    got = {"module.rpn.head.dyhead_tower.0." + k: tuple(v.shape) for k, v in fuse.state_dict().items()}
    assert got == expected


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_matches_plain_restatement_of_glip_forward(dtype, tolerance):
    fuse = _small_fuse().eval()
    _randomise(fuse)
    fuse.to(dtype)
    maps, hidden, masks = _inputs()
    maps, hidden = [m.to(dtype) for m in maps], hidden.to(dtype)
    out = _run(fuse, maps, hidden, masks)
    ref_maps, ref_hidden = _glip_reference(dict(fuse.b_attn.state_dict()), maps, hidden, masks, HEADS)
    assert [m.shape for m in out["visual"]] == [m.shape for m in maps]
    for got, want in zip(out["visual"], ref_maps):
        torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(out["lang"]["hidden"], ref_hidden, rtol=tolerance, atol=tolerance)


def test_clamps_act_on_huge_scores_as_in_glip():
    fuse = _small_fuse().eval()
    _randomise(fuse)
    with torch.no_grad():
        fuse.b_attn.attn.v_proj.weight.mul_(1e5)  # scores far beyond +/-50000
    maps, hidden, masks = _inputs()
    ref_maps, ref_hidden = _glip_reference(dict(fuse.b_attn.state_dict()), maps, hidden, masks, HEADS)
    out = _run(fuse, maps, hidden, masks)
    torch.testing.assert_close(out["lang"]["hidden"], ref_hidden, rtol=1e-5, atol=1e-5)
    for got, want in zip(out["visual"], ref_maps):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    unclamped = _small_fuse(clamp_min_for_underflow=False, clamp_max_for_overflow=False).eval()
    unclamped.load_state_dict(fuse.state_dict())
    assert not torch.allclose(_run(unclamped, maps, hidden, masks)["lang"]["hidden"], ref_hidden, atol=1e-3)


def test_layer_scale_starts_at_one_sixth_and_is_per_channel():
    block = BiAttentionBlock(V_DIM, L_DIM, EMBED, HEADS)
    assert torch.equal(block.gamma_v, torch.full((V_DIM,), 1.0 / 6))
    assert torch.equal(block.gamma_l, torch.full((L_DIM,), 1.0 / 6))

    block.eval()
    _randomise(block)
    gamma_v = torch.linspace(-1.0, 2.0, V_DIM)
    gamma_v[::3] = 0.0
    gamma_l = torch.linspace(0.5, -0.5, L_DIM)
    with torch.no_grad():
        block.gamma_v.copy_(gamma_v)
        block.gamma_l.copy_(gamma_l)
        _, hidden, masks = _inputs()
        v = torch.randn(2, 9, V_DIM)
        out_v, out_l = block(v, hidden, masks)
        normed_v, normed_l = block.layer_norm_v(v), block.layer_norm_l(hidden)
        delta_v, delta_l = block.attn(normed_v, normed_l, masks)
    torch.testing.assert_close(out_v, normed_v + gamma_v * delta_v, rtol=0, atol=0)
    torch.testing.assert_close(out_l, normed_l + gamma_l * delta_l, rtol=0, atol=0)
    assert torch.equal(out_v[..., ::3], normed_v[..., ::3])  # gamma 0 on a channel: that channel is just LN(v)


def test_padded_text_tokens_do_not_reach_image_outputs():
    fuse = _small_fuse().eval()
    _randomise(fuse)
    maps, hidden, masks = _inputs()
    changed = hidden.clone()
    padded = masks == 0
    changed[padded] = 100.0 * torch.randn(int(padded.sum()), L_DIM)
    before, after = _run(fuse, maps, hidden, masks), _run(fuse, maps, changed, masks)
    for a, b in zip(before["visual"], after["visual"]):
        assert torch.equal(a, b)
    real = ~padded
    assert torch.equal(before["lang"]["hidden"][real], after["lang"]["hidden"][real])
    # Without the mask the padded tokens do matter: the test would notice a mask that had no effect.
    unmasked = _run(fuse, maps, changed, torch.ones_like(masks))
    assert not torch.allclose(unmasked["visual"][0], before["visual"][0])


def test_language_dict_is_copied_and_levels_round_trip():
    fuse = _small_fuse().eval()
    maps, hidden, masks = _inputs()
    lang = {"hidden": hidden, "masks": masks, "embedded": hidden * 2}
    out = fuse({"visual": maps, "lang": lang})
    assert lang["hidden"] is hidden and out["lang"]["masks"] is masks and out["lang"]["embedded"] is lang["embedded"]
    assert out["lang"]["hidden"].shape == hidden.shape
    assert all(m.is_contiguous() for m in out["visual"])
    sequence, sizes = flatten_levels(maps)
    assert sequence.shape == (2, sum(h * w for h, w in LEVEL_SIZES), V_DIM)
    assert all(torch.equal(a, b) for a, b in zip(unflatten_levels(sequence, sizes), maps))


def test_extra_tokens_join_after_the_layer_norms_and_are_dropped_before_the_residual():
    fuse = _small_fuse().eval()
    _randomise(fuse)
    block = fuse.b_attn
    maps, hidden, masks = _inputs()
    extra_v = torch.randn(3, V_DIM, requires_grad=True)
    extra_l = torch.randn(2, 2, L_DIM, requires_grad=True)
    out = fuse({"visual": maps, "lang": {"hidden": hidden, "masks": masks}}, extra_v=extra_v, extra_l=extra_l)

    sequence, sizes = flatten_levels(maps)
    with torch.no_grad():
        normed_v, normed_l = block.layer_norm_v(sequence), block.layer_norm_l(hidden)
        joint_v = torch.cat([normed_v, extra_v.expand(2, -1, -1)], dim=1)
        joint_l = torch.cat([normed_l, extra_l], dim=1)
        joint_mask = torch.cat([masks, torch.ones(2, 2, dtype=masks.dtype)], dim=1)
        delta_v, delta_l = block.attn(joint_v, joint_l, joint_mask)
        want_v = normed_v + block.gamma_v * delta_v[:, :sequence.shape[1]]
        want_l = normed_l + block.gamma_l * delta_l[:, :NUM_TEXT]
    torch.testing.assert_close(flatten_levels(out["visual"])[0], want_v, rtol=0, atol=1e-6)
    torch.testing.assert_close(out["lang"]["hidden"], want_l, rtol=0, atol=1e-6)

    (out["visual"][0].sum() + out["lang"]["hidden"].sum()).backward()
    assert extra_v.grad is not None and extra_v.grad.abs().sum() > 0
    assert extra_l.grad is not None and extra_l.grad.abs().sum() > 0
    # No extra tokens: the official path, unchanged.
    plain = _run(fuse, maps, hidden, masks)
    empty = _run(fuse, maps, hidden, masks, extra_v=torch.zeros(0, V_DIM), extra_l=torch.zeros(0, L_DIM))
    assert all(torch.equal(a, b) for a, b in zip(plain["visual"], empty["visual"]))


def test_checkpointed_training_matches_plain_training():
    maps, hidden, masks = _inputs()
    results = []
    for use_checkpoint in (False, True):
        fuse = _small_fuse(dropout=0.0, use_checkpoint=use_checkpoint).train()
        _randomise(fuse)
        out = fuse({"visual": maps, "lang": {"hidden": hidden, "masks": masks}})
        (out["visual"][1].square().sum() + out["lang"]["hidden"].sum()).backward()
        results.append((out["lang"]["hidden"].detach(), fuse.b_attn.attn.l_proj.weight.grad.clone()))
    assert torch.equal(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


def test_attention_rejects_bad_head_count():
    with pytest.raises(ValueError):
        BiMultiHeadAttention(V_DIM, L_DIM, embed_dim=30, num_heads=4)
