"""Prompt tokens acting inside GLIP's fusion attention, as `sdpt.detector.grounding_dino.fusion` does for Grounding
DINO.

This module owns two things:

- `prompted_attention`: `BiMultiHeadAttention`'s forward re-stated with `FusionPrompts` acting in it ("paper": the
  tokens are appended to both streams and cut off before the residual; "shared_gate": the same with a logit offset
  per prompt token in each score; "branch": the main attention exactly as without prompts, plus the updates of
  `prompt_branch` handed back to the caller). With no prompts it is bit-for-bit the module's own forward.
- `GlipPromptInjector`: routes chosen fusion blocks (`rpn.head.fusion_layers[i].b_attn`) through it and adds the
  branch updates after the layer scale, so they do not shrink with GLIP's small gamma.

GLIP's numerics are kept: scale, optional global max subtraction (STABLE_SOFTMAX_2D), +/-50000 clamps, per-row max
subtraction on the text side, the additive text mask (-9e15) on the image side only. GLIP has no image mask, so
padded per-image vision prompt tokens get an additive bias of their own on the text side (see `_vision_pad_bias`).
"""
from __future__ import annotations

import logging
from typing import Callable

import torch
import torch.nn.functional as F

from sdpt.detector.fusion_prompts import FusionPrompts, prompt_branch
from sdpt.detector.glip.fusion import TEXT_PAD_SCORE, BiAttentionBlock, BiMultiHeadAttention

logger = logging.getLogger(__name__)


def _tokens(prompts: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    # Shared (N, d) tokens serve every image; per-image (B, N, d) tokens are used as given. None when there are none.
    if prompts is None or prompts.shape[-2] == 0:
        return None
    tokens = prompts.to(dtype=like.dtype, device=like.device)
    return tokens.unsqueeze(0).expand(like.shape[0], -1, -1) if tokens.dim() == 2 else tokens


def _text_bias(attention_mask_l, batch, num_l, n_text, visible: bool, dtype, device):
    """The image side's additive (B, Nl + n_text) text bias, or None where GLIP would add none."""
    if attention_mask_l is not None:
        if attention_mask_l.dim() != 2:
            raise ValueError(f"attention_mask_l must be (batch, text tokens), got {tuple(attention_mask_l.shape)}")
        if n_text:
            # Prompt tokens are real tokens (mask 1, as `BiAttentionBlock.attend` marks them) unless hidden (0).
            extra = attention_mask_l.new_full((batch, n_text), 1 if visible else 0)
            attention_mask_l = torch.cat([attention_mask_l, extra], dim=1)
        return BiMultiHeadAttention.text_mask_bias(attention_mask_l, dtype)
    if n_text and not visible:
        # No mask to extend: real tokens get no bias at all (as without prompts), hidden prompts the pad score.
        work = torch.promote_types(dtype, torch.float32)
        bias = torch.zeros(batch, num_l + n_text, dtype=work, device=device)
        bias[:, num_l:] = TEXT_PAD_SCORE
        return bias.to(dtype)
    return None


def _vision_pad_bias(padding: torch.Tensor, batch, num_v, n_vision, dtype, device) -> torch.Tensor:
    """(B, Nv + n_vision): 0 for every image token and visible prompt, -9e15 for a padded vision prompt token.

    GLIP has no image mask to extend, so this one exists only for the prompt positions. It is added after the text
    side's row-max subtraction and clamp, as GLIP adds its text mask after the clamps on the image side, so padded
    scores stay at -9e15 instead of being lifted to the -50000 floor. Padded tokens still take part in the max
    subtractions (as in Grounding DINO's restatement), which only matters if scores span more than the clamp range.
    Built in at least float32, then cast (-inf in fp16), like `BiMultiHeadAttention.text_mask_bias`."""
    work = torch.promote_types(dtype, torch.float32)
    bias = torch.zeros(batch, num_v + n_vision, dtype=work, device=device)
    bias[:, num_v:] = torch.zeros(batch, n_vision, dtype=work, device=device).masked_fill(
        padding.to(device=device, dtype=torch.bool), TEXT_PAD_SCORE)
    return bias.to(dtype)


def prompted_attention(attn: BiMultiHeadAttention, v: torch.Tensor, l: torch.Tensor,
                       attention_mask_l: torch.Tensor | None = None, prompts: FusionPrompts | None = None,
                       branch_out: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`attn(v, l, attention_mask_l)` with `prompts` acting in it -> (delta_v (B, Nv, v_dim), delta_l (B, Nl, l_dim)).

    v, l: the layer-normed streams (prompt tokens join after the norms, unnormalised); attention_mask_l: GLIP's
    (B, Nl) text mask, nonzero = real token. Branch prompts (`prompts.branch_scales` set) leave the returned updates
    exactly as without prompts and append the branch's (vision, text) updates to `branch_out`.
    """
    batch, num_v, _ = v.shape
    num_l = l.shape[1]
    branch = prompts if prompts is not None and prompts.branch_scales is not None else None
    if branch is not None:
        if branch_out is None:
            raise ValueError("branch prompts need a branch_out list to return their updates in")
        prompts = None
    n_vision = n_text = 0
    text_visible = True
    vision_bias = None
    if prompts is not None:
        extra_v, extra_l = _tokens(prompts.vision, v), _tokens(prompts.text, l)
        if extra_v is not None:
            n_vision = extra_v.shape[1]
            v = torch.cat([v, extra_v], dim=1)
            if prompts.vision_padding is not None:
                vision_bias = _vision_pad_bias(prompts.vision_padding, batch, num_v, n_vision, v.dtype, v.device)
        if extra_l is not None:
            n_text = extra_l.shape[1]
            l = torch.cat([l, extra_l], dim=1)
        text_visible = prompts.image_sees_text_prompts
    total_v, total_l = num_v + n_vision, num_l + n_text
    text_bias = _text_bias(attention_mask_l, batch, num_l, n_text, text_visible, v.dtype, v.device)

    # From here on, BiMultiHeadAttention.forward op for op (its own helpers), so no prompts = bit-for-bit equal.
    queries = attn._split_heads(attn.v_proj(v) * attn.scale)
    keys = attn._split_heads(attn.l_proj(l))
    values_v = attn._split_heads(attn.values_v_proj(v))
    values_l = attn._split_heads(attn.values_l_proj(l))
    if branch is not None:  # the branch reads the same image tokens and the main attention's split-head keys
        branch_out.extend(prompt_branch(attn, v, keys, branch, batch))

    scores = torch.bmm(queries, keys.transpose(1, 2))  # (B * heads, Nv, Nl)
    if prompts is not None and prompts.gate is not None:
        # The gate once per prompt token involved in a score (0, 1 or 2 times), before the shifts and clamps, as in
        # Grounding DINO's restatement: a very negative gate is clamped to -50000 and silences the prompts.
        is_prompt_row = (torch.arange(total_v, device=scores.device) >= num_v).to(scores.dtype)
        is_prompt_col = (torch.arange(total_l, device=scores.device) >= num_l).to(scores.dtype)
        scores = scores + prompts.gate.to(scores.dtype) * (is_prompt_row[:, None] + is_prompt_col[None, :])
    if attn.stable_softmax_2d:
        scores = scores - scores.max()
    scores = attn._clamp(scores)

    text_scores = scores.transpose(1, 2)
    text_scores = text_scores - text_scores.max(dim=-1, keepdim=True).values
    text_scores = attn._clamp(text_scores)
    if vision_bias is not None:
        text_scores = text_scores.view(batch, attn.num_heads, total_l, total_v) + vision_bias[:, None, None, :]
        text_scores = text_scores.view(batch * attn.num_heads, total_l, total_v)
    text_weights = text_scores.softmax(dim=-1)

    if text_bias is not None:
        scores = scores.view(batch, attn.num_heads, total_v, total_l) + text_bias[:, None, None, :]
        scores = scores.view(batch * attn.num_heads, total_v, total_l)
    image_weights = scores.softmax(dim=-1)

    image_probs = F.dropout(image_weights, p=attn.dropout, training=attn.training)
    text_probs = F.dropout(text_weights, p=attn.dropout, training=attn.training)
    delta_v = attn.out_v_proj(attn._merge_heads(torch.bmm(image_probs, values_l), batch))
    delta_l = attn.out_l_proj(attn._merge_heads(torch.bmm(text_probs, values_v), batch))
    if n_vision or n_text:  # the prompt positions' own outputs never reach the residual
        delta_v, delta_l = delta_v[:, :num_v], delta_l[:, :num_l]
    return delta_v, delta_l


class GlipPromptInjector:
    """Routes chosen GLIP fusion blocks through `prompted_attention` with prompts from
    `prompts_for(layer_index, v_normed, l_normed, text_padding)` (None = no prompts in that call): the layer-normed
    streams and the (B, Nl) bool text padding, True = padding, or None. That is the host-neutral convention (Grounding
    DINO's injector passes transformers' mask, True = padding): methods such as DPT hand it on as `vision_padding`,
    so GLIP's own mask (nonzero = real) is inverted here rather than leaked to them.

    `attach()` sets a `forward` in each chosen `BiAttentionBlock`'s instance `__dict__`; `detach()` removes it, so a
    detached detector is exactly the plain model. `VLFuse` calls the block through `Module.__call__`, also under
    activation checkpointing, so the patched forward (and `prompts_for`) is what gets recomputed in backward.
    """

    def __init__(self, detector, layer_indices, prompts_for: Callable[..., FusionPrompts | None]):
        self.detector = detector
        self.layer_indices = list(layer_indices)
        self.prompts_for = prompts_for
        self.attached = False

    def _block(self, index: int) -> BiAttentionBlock:
        return self.detector.model.rpn.head.fusion_layers[index].b_attn

    def attach(self) -> None:
        if self.attached:
            return
        for index in self.layer_indices:  # check all first, so a refusal leaves nothing half attached
            if "forward" in self._block(index).__dict__:
                raise RuntimeError(f"GLIP fusion layer {index} already has a prompt attached; detach it first")
        for index in self.layer_indices:
            block = self._block(index)
            block.forward = self._block_forward(block, index)
        self.attached = True
        logger.debug("prompts attached to GLIP fusion layers %s", self.layer_indices)

    def detach(self) -> None:
        if not self.attached:
            return
        for index in self.layer_indices:
            self._block(index).__dict__.pop("forward", None)
        self.attached = False
        logger.debug("prompts detached from GLIP fusion layers %s", self.layer_indices)

    def _block_forward(self, block: BiAttentionBlock, index: int):
        def forward(v, l, attention_mask_l=None, extra_v=None, extra_l=None):
            v = block.layer_norm_v(v)
            l = block.layer_norm_l(l)
            padding = None if attention_mask_l is None else attention_mask_l == 0
            prompts = self.prompts_for(index, v, l, padding)
            branch: list = []
            if extra_v is not None or extra_l is not None:
                # The block's own extra-token entry point; two prompt mechanisms at once would be ambiguous.
                if prompts is not None:
                    raise ValueError(f"GLIP fusion layer {index} got extra tokens and injector prompts at once")
                delta_v, delta_l = block.attend(v, l, attention_mask_l, extra_v, extra_l)
            else:
                delta_v, delta_l = prompted_attention(block.attn, v, l, attention_mask_l, prompts, branch)
            # As BiAttentionBlock.forward: residual on the normed features, one drop-path draw per stream.
            v_out = v + block.drop_path(block.gamma_v * delta_v)
            l_out = l + block.drop_path(block.gamma_l * delta_l)
            if branch:  # after gamma and drop path: the branch's size is its own scales' alone
                vision_update, text_update = branch
                if vision_update is not None:
                    v_out = v_out + vision_update
                if text_update is not None:
                    l_out = l_out + text_update
            return v_out, l_out
        return forward
