"""Prompt tokens in a fusion layer's bi-directional attention, the part every host shares.

`FusionPrompts` is what a prompt method hands a fusion layer; each host re-states its own attention numerics with
those tokens acting in it (`sdpt.detector.grounding_dino.fusion`, `sdpt.detector.glip.prompting`). The "branch"
injection's attention over prompt tokens (`prompt_branch`) uses only the layer's frozen projections, so it is the same
on every host.

A host's fusion attention module exposes, under these names: `vision_proj` and `text_proj` (the image-query and
text-key projections into the shared attention space, which SDPT inverts), `values_vision_proj`, `values_text_proj`,
`out_vision_proj`, `out_text_proj`, and `num_heads`, `head_dim`, `embed_dim`, `vision_dim`, `text_dim`, `scale`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FusionPrompts:
    """Tokens appended to one fusion layer's inputs.

    vision: (N, vision_dim) or per-image (B, N, vision_dim) tokens in the image stream (keys/values for text queries).
    text: (N, text_dim) or (B, N, text_dim) tokens in the text stream (keys/values for image queries).
    vision_padding: optional (B, N) mask, True where a per-image vision token is padding (never attended to).
    gate: scalar added to every attention logit that involves a prompt token; very negative = prompts silent.
    image_sees_text_prompts: False reproduces the released SDPT code, which masks the text-side prompts
        for image queries (so only text tokens look at prompts).
    text_sees_image_prompts: False keeps text queries away from the image-side prompts ("branch" only; an
        ablation of the streams).
    branch_scales: ("branch" injection) the already squashed factors (image stream, text stream) of the branch,
        each a scalar or one per attention head; None = the tokens are appended to the main attention instead.
    """

    vision: torch.Tensor | None
    text: torch.Tensor | None
    gate: torch.Tensor | None = None
    image_sees_text_prompts: bool = True
    vision_padding: torch.Tensor | None = None
    text_sees_image_prompts: bool = True
    branch_scales: tuple[torch.Tensor, torch.Tensor] | None = None


def _split_heads(attn, states: torch.Tensor, batch_size: int) -> torch.Tensor:
    # (B, L, E) -> (B * heads, L, head_dim)
    states = states.view(batch_size, -1, attn.num_heads, attn.head_dim).transpose(1, 2)
    return states.reshape(batch_size * attn.num_heads, -1, attn.head_dim)


def _prompt_attention(attn, queries, keys, values, padding, scale, out_proj, batch_size):
    """The text tokens' queries (B*heads, Q, head_dim) over the vision-side prompt keys/values, in a softmax of
    their own; each head's answer times `scale`, merged and passed through `out_proj`'s weight (its bias belongs to
    the main attention's output). Image tokens take the other road, `_image_query_probs`, whose scores are folded
    into one product with the image tokens themselves.

    Computed as softmax(Q K^T) (s V W_o): the output projection and the scales are applied to the N prompt values
    of each head first (`_apply_probs`) instead of to every query's merged answer. Same result up to float
    rounding."""
    heads, count = attn.num_heads, keys.shape[1]
    scores = torch.bmm(queries, keys.transpose(1, 2))  # (B*heads, Q, N)
    if padding is not None:
        mask = padding[:, None, None, :].repeat(1, heads, 1, 1).flatten(0, 1)
        scores = scores.masked_fill(mask, float("-inf"))
    probs = scores.softmax(dim=-1).view(batch_size, heads, -1, count)  # (B, heads, Q, N)
    return _apply_probs(attn, probs.permute(0, 2, 1, 3).reshape(batch_size, -1, heads * count), values, scale,
                        out_proj, batch_size)


def _per_image(tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    return tokens.unsqueeze(0).expand(batch_size, -1, -1) if tokens.dim() == 2 else tokens


def _image_query_probs(attn, states: torch.Tensor, keys: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Each image token's attention over the prompt keys, per head: (B, Q, heads * N), head-major.

    The scores are the main attention's scaled queries times the keys, (states W_h^T + b_h) s K_h^T per head, folded
    as states (W_h^T K_h^T s) + b_h K_h^T s: one (Q x d_v) @ (d_v x heads*N) product instead of a per-head batched
    product over the projected queries (the same FLOPs, but one large matrix product runs several times faster on a
    CPU than `heads` thin ones; GLIP-T at 800 px: about 110 ms of a 10 s detection). Same result up to float rounding.

    states: (B, Q, d_v), the image tokens entering the attention; keys: (B, N, E), the projected prompt keys."""
    heads, head_dim = attn.num_heads, attn.head_dim
    count = keys.shape[1]
    proj = attn.vision_proj
    keys = keys.view(batch_size, count, heads, head_dim)
    weight = proj.weight.to(keys.dtype).view(heads, head_dim, -1)  # (heads, head_dim, d_v)
    folded = torch.einsum("hdv,bnhd->bvhn", weight, keys).reshape(batch_size, -1, heads * count) * attn.scale
    if proj.bias is not None:
        offset = torch.einsum("hd,bnhd->bhn", proj.bias.to(keys.dtype).view(heads, head_dim), keys)
        scores = torch.baddbmm(offset.reshape(batch_size, 1, heads * count) * attn.scale, states.to(keys.dtype), folded)
    else:
        scores = torch.bmm(states.to(keys.dtype), folded)
    return scores.view(batch_size, -1, heads, count).softmax(dim=-1).reshape(batch_size, -1, heads * count)


def _apply_probs(attn, probs: torch.Tensor, values: torch.Tensor, scale, out_proj, batch_size: int) -> torch.Tensor:
    """(B, Q, heads * N) attention weights (head-major) over the prompt values (B * heads, N, head_dim) -> (B, Q, out):
    each head's answer times `scale` (one factor, or one per head), merged, through `out_proj`'s weight."""
    heads, count = attn.num_heads, probs.shape[-1] // attn.num_heads
    # out_proj's input columns are the merged heads in order (head, head_dim): split its weight by head.
    weight = out_proj.weight.view(out_proj.out_features, heads, attn.head_dim)  # (out, heads, head_dim)
    projected = torch.einsum("bhnd,ohd->bhno", values.view(batch_size, heads, count, attn.head_dim), weight)
    projected = projected * scale.to(projected.dtype).reshape(-1, 1, 1)
    # Sum over heads and tokens at once: (B, Q, heads*N) @ (B, heads*N, out).
    return torch.bmm(probs.to(projected.dtype), projected.reshape(batch_size, heads * count, -1))


def prompt_branch(attn, vision_states: torch.Tensor, key, prompts: FusionPrompts, batch_size: int):
    """The branch updates (vision (B, Nv, d_v) or None, text (B, Nt, d_l) or None) of one fusion layer.

    vision_states: the image tokens entering the attention (B, Nv, d_v), key: the text tokens' keys as the main
    attention split them into heads. Image queries read the text-side prompt tokens (their scores computed from the
    states in one product, `_image_query_probs`); text queries read the image-side ones (the main attention's
    transposed direction, where text keys act as queries and the prompts' scaled image queries as keys).
    """
    vision_scale, text_scale = prompts.branch_scales
    vision_update = text_update = None
    if prompts.text is not None and prompts.image_sees_text_prompts:
        tokens = _per_image(prompts.text.to(vision_states.dtype), batch_size)  # (B, N, d_l)
        values = _split_heads(attn, attn.values_text_proj(tokens), batch_size)
        probs = _image_query_probs(attn, vision_states, attn.text_proj(tokens), batch_size)
        vision_update = _apply_probs(attn, probs, values, vision_scale, attn.out_vision_proj, batch_size)
    if prompts.vision is not None and prompts.text_sees_image_prompts:
        tokens = _per_image(prompts.vision.to(key.dtype), batch_size)  # (B, N, d_v)
        text_update = _prompt_attention(
            attn, key, _split_heads(attn, attn.vision_proj(tokens) * attn.scale, batch_size),
            _split_heads(attn, attn.values_vision_proj(tokens), batch_size), prompts.vision_padding, text_scale,
            attn.out_text_proj, batch_size)
    return vision_update, text_update
