"""Prompt injection into the fusion layers' bi-directional cross-attention (`GroundingDinoBiMultiHeadAttention`).

`fusion_attention` re-states that attention so prompt tokens can act in it, in one of three ways (`INJECTIONS`):

- "paper": the tokens are appended to both token streams and cut off again before the residual update (SDPT as
  published);
- "shared_gate": the same, with a learned logit offset (gate) on every score that involves a prompt token, so the
  prompted model starts as the zero-shot model;
- "branch": the main attention is left as it is; each stream's queries also attend, in a softmax of their own,
  over the other stream's prompt tokens, through the layer's frozen value and output projections. That branch is
  scaled by tanh of a learned scale (zero at start) and added to the fusion block's output *after* its layer-scale
  (gamma), which in trained checkpoints shrinks everything the attention adds (0.006-0.011 in the shipped small
  model), prompts included.

With no prompts it computes exactly what transformers computes (tested bit-for-bit).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from sdpt.config import INJECTIONS  # noqa: F401 (re-exported: the injections this module implements)
from sdpt.detector.fusion_prompts import FusionPrompts, prompt_branch


def _split_heads(attn, states: torch.Tensor, batch_size: int) -> torch.Tensor:
    # (B, L, E) -> (B * heads, L, head_dim)
    states = states.view(batch_size, -1, attn.num_heads, attn.head_dim).transpose(1, 2)
    return states.reshape(batch_size * attn.num_heads, -1, attn.head_dim)


def _merge_heads(attn, states: torch.Tensor, batch_size: int, length: int) -> torch.Tensor:
    states = states.view(batch_size, attn.num_heads, length, attn.head_dim).transpose(1, 2)
    return states.reshape(batch_size, length, attn.embed_dim)


def _append(features, mask, prompts: torch.Tensor | None, mask_value: bool, padding: torch.Tensor | None = None):
    if prompts is None or prompts.shape[-2] == 0:
        return features, mask, 0
    batch_size, count = features.shape[0], prompts.shape[-2]
    tokens = prompts.to(features.dtype)
    if tokens.dim() == 2:
        tokens = tokens.unsqueeze(0).expand(batch_size, -1, -1)
    features = torch.cat([features, tokens], dim=1)
    if mask is not None:
        extra = torch.full((batch_size, count), mask_value, dtype=mask.dtype, device=mask.device)
        if padding is not None:
            extra = extra | padding.to(mask.dtype)
        mask = torch.cat([mask, extra], dim=1)
    return features, mask, count


def fusion_attention(attn, vision_features, text_features, vision_attention_mask=None, text_attention_mask=None,
                     prompts: FusionPrompts | None = None, branch_out: list | None = None):
    """The bi-attention of `attn` over image and text tokens, with `prompts` acting in it.

    Masks use True = padding, as in transformers. Returns ((vision_out, vision_weights), (text_out, text_weights))
    with the prompt positions removed, the same shapes as the unprompted module. Branch prompts
    (`prompts.branch_scales` set) leave these outputs exactly as without prompts; the branch's (vision, text) updates
    are appended to `branch_out` instead, for the caller to add after the layer-scale.
    """
    batch_size, num_vision, _ = vision_features.shape
    num_text = text_features.shape[1]
    branch = prompts if prompts is not None and prompts.branch_scales is not None else None
    if branch is not None:
        if branch_out is None:
            raise ValueError("branch prompts need a branch_out list to return their updates in")
        prompts = None
    if prompts is not None:
        if text_attention_mask is None:
            text_attention_mask = torch.zeros(batch_size, num_text, dtype=torch.bool, device=text_features.device)
        if vision_attention_mask is None:
            vision_attention_mask = torch.zeros(batch_size, num_vision, dtype=torch.bool, device=vision_features.device)
        vision_features, vision_attention_mask, n_vision = _append(
            vision_features, vision_attention_mask, prompts.vision, False, prompts.vision_padding)
        # Padding-masked text prompts are invisible to image queries (the released code's behaviour).
        text_features, text_attention_mask, n_text = _append(
            text_features, text_attention_mask, prompts.text, not prompts.image_sees_text_prompts)
    else:
        n_vision = n_text = 0

    query = _split_heads(attn, attn.vision_proj(vision_features) * attn.scale, batch_size)
    key = _split_heads(attn, attn.text_proj(text_features), batch_size)
    vision_values = _split_heads(attn, attn.values_vision_proj(vision_features), batch_size)
    text_values = _split_heads(attn, attn.values_text_proj(text_features), batch_size)
    if branch is not None:  # the branch reads the same image tokens and the main attention's split-head keys
        branch_out.extend(prompt_branch(attn, vision_features, key, branch, batch_size))

    scores = torch.bmm(query, key.transpose(1, 2))  # (B*heads, vision tokens, text tokens)
    if prompts is not None and prompts.gate is not None:
        # Count of prompt tokens involved in each score (0, 1 or 2), times the gate.
        is_prompt_row = (torch.arange(scores.shape[1], device=scores.device) >= num_vision).to(scores.dtype)
        is_prompt_col = (torch.arange(scores.shape[2], device=scores.device) >= num_text).to(scores.dtype)
        scores = scores + prompts.gate.to(scores.dtype) * (is_prompt_row[:, None] + is_prompt_col[None, :])
    # From here on, the same numerics as transformers' GroundingDinoBiMultiHeadAttention.
    scores = scores - scores.max()
    scores = torch.clamp(scores, min=-50000, max=50000)
    text_scores = scores.transpose(1, 2)
    text_scores = text_scores - torch.max(text_scores, dim=-1, keepdim=True)[0]
    text_scores = torch.clamp(text_scores, min=-50000, max=50000)
    if vision_attention_mask is not None:
        mask = vision_attention_mask[:, None, None, :].repeat(1, attn.num_heads, 1, 1).flatten(0, 1)
        text_scores = text_scores.masked_fill(mask, float("-inf"))
    text_weights = text_scores.softmax(dim=-1)
    if text_attention_mask is not None:
        mask = text_attention_mask[:, None, None, :].repeat(1, attn.num_heads, 1, 1).flatten(0, 1)
        scores = scores.masked_fill(mask, float("-inf"))
    vision_weights = scores.softmax(dim=-1)

    vision_probs = F.dropout(vision_weights, p=attn.dropout, training=attn.training)
    text_probs = F.dropout(text_weights, p=attn.dropout, training=attn.training)
    vision_out = torch.bmm(vision_probs, text_values)
    text_out = torch.bmm(text_probs, vision_values)

    total_vision, total_text = num_vision + n_vision, num_text + n_text
    vision_out = attn.out_vision_proj(_merge_heads(attn, vision_out, batch_size, total_vision))
    text_out = attn.out_text_proj(_merge_heads(attn, text_out, batch_size, total_text))
    # Weights keep transformers' (batch * heads, queries, keys) layout.
    return (
        (vision_out[:, :num_vision], vision_weights[:, :num_vision, :num_text]),
        (text_out[:, :num_text], text_weights[:, :num_text, :num_vision]),
    )


class FusionPromptInjector:
    """Routes chosen fusion layers through `fusion_attention` with prompts from
    `prompts_for(layer_index, vision_features, text_features, text_attention_mask)` (the layer's own inputs, for
    methods whose tokens depend on them).

    `attach()` replaces the forward of those attention modules (and, for branch prompts, of their fusion blocks,
    which add the branch after the layer-scale); `detach()` gives them back untouched, so a detached detector is
    exactly the plain model.
    """

    def __init__(self, detector, layer_indices: list[int], prompts_for: Callable[..., FusionPrompts | None]):
        self.detector = detector
        self.layer_indices = list(layer_indices)
        self.prompts_for = prompts_for
        self.attached = False

    def _modules(self, index: int) -> list:
        block = self.detector.fusion_blocks[index]
        return [block.attn, block]

    def attach(self) -> None:
        if self.attached:
            return
        for index in self.layer_indices:
            if any("forward" in module.__dict__ for module in self._modules(index)):
                raise RuntimeError(f"fusion layer {index} already has a prompt attached; detach it first")
        for index in self.layer_indices:
            block = self.detector.fusion_blocks[index]
            pending: list = []  # branch updates the attention leaves for its block (one forward at a time)
            block.attn.forward = self._attention_forward(block.attn, index, pending)
            block.forward = self._block_forward(block, pending)
        self.attached = True

    def detach(self) -> None:
        if not self.attached:
            return
        for index in self.layer_indices:
            for module in self._modules(index):
                module.__dict__.pop("forward", None)
        self.attached = False

    def _attention_forward(self, attn, index: int, pending: list):
        def forward(vision_features, text_features, vision_attention_mask=None, text_attention_mask=None):
            prompts = self.prompts_for(index, vision_features, text_features, text_attention_mask)
            pending.clear()
            return fusion_attention(attn, vision_features, text_features, vision_attention_mask,
                                    text_attention_mask, prompts=prompts, branch_out=pending)
        return forward

    @staticmethod
    def _block_forward(block, pending: list):
        original = type(block).forward

        def forward(*args, **kwargs):
            pending.clear()
            (vision, vision_weights), (text, text_weights) = original(block, *args, **kwargs)
            if pending:  # after gamma: vision + gamma * attention update + branch update
                vision_update, text_update = pending
                pending.clear()
                if vision_update is not None:
                    vision = vision + vision_update
                if text_update is not None:
                    text = text + text_update
            return (vision, vision_weights), (text, text_weights)
        return forward
