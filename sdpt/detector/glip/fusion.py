"""GLIP's early image-text fusion ("MHA-B"): the bi-directional cross-attention between the flattened FPN levels and
the BERT tokens that opens each of the dynamic head's six stages.

Three modules, named as in the official checkpoint (`rpn.head.dyhead_tower.{0,3,...}.b_attn.*`):

- `BiMultiHeadAttention`: one set of scores image-query x text-key, read row-wise for the image side and
  column-wise for the text side; keeps GLIP's numerics (scale, +/-50000 clamps, per-row max subtraction on the text
  side, the additive text mask on the image side only).
- `BiAttentionBlock` (official class `BiAttentionBlockForCheckpoint`): pre layer norms, the attention, and a per-channel
  layer scale (`gamma_v`, `gamma_l`) on the residual, which is added to the *layer-normed* features.
- `VLFuse`: flattens the FPN maps into one image sequence, runs the block, splits the result back into maps and
  replaces the language dict's `hidden`.

Prompt injection: `BiAttentionBlock.attend` is the one place where extra tokens enter. They are appended after the
layer norms (so they are not normalised) and their outputs are cut off before the residual; with no extra tokens it
is exactly the official computation.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from sdpt.detector.glip.swin import DropPath

# GLIP clamps raw scores to this range so that they survive fp16 (whose max is 65504).
SCORE_CLAMP = 50000.0
# Added to the image-side scores of padded text tokens (the official value; -inf in fp16).
TEXT_PAD_SCORE = -9e15

# GLIP-T ("glip_Swin_T_O365_GoldG"): FPN channels, BERT width, fusion width and heads, six dynamic-head stages.
GLIP_T_V_DIM = 256
GLIP_T_L_DIM = 768
GLIP_T_EMBED_DIM = 2048
GLIP_T_HEADS = 8
GLIP_T_NUM_STAGES = 6


class BiMultiHeadAttention(nn.Module):
    """Image tokens attend to text tokens and text tokens to image tokens through one shared score matrix.

    Inputs are already layer-normed: v (B, Nv, v_dim), l (B, Nl, l_dim), attention_mask_l (B, Nl) with 1 (or any
    nonzero) for real tokens and 0 for padding. Returns the updates (delta_v (B, Nv, v_dim), delta_l (B, Nl, l_dim))
    before any residual or layer scale.

    `v_proj` and `l_proj` are the query (image) and key (text) projections; a prompt method that maps tokens back
    into the input spaces inverts these two.
    """

    def __init__(self, v_dim: int = GLIP_T_V_DIM, l_dim: int = GLIP_T_L_DIM, embed_dim: int = GLIP_T_EMBED_DIM,
                 num_heads: int = GLIP_T_HEADS, dropout: float = 0.1, clamp_min_for_underflow: bool = True,
                 clamp_max_for_overflow: bool = True, stable_softmax_2d: bool = False) -> None:
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.v_dim = v_dim
        self.l_dim = l_dim
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.dropout = dropout
        self.clamp_min_for_underflow = clamp_min_for_underflow
        self.clamp_max_for_overflow = clamp_max_for_overflow
        # GLIP's STABLE_SOFTMAX_2D (off for GLIP-T): subtracts one global max over the whole batch before the clamps,
        # which couples all images and all tokens (padding included) through that shift.
        self.stable_softmax_2d = stable_softmax_2d

        self.v_proj = nn.Linear(v_dim, embed_dim)
        self.l_proj = nn.Linear(l_dim, embed_dim)
        self.values_v_proj = nn.Linear(v_dim, embed_dim)
        self.values_l_proj = nn.Linear(l_dim, embed_dim)
        self.out_v_proj = nn.Linear(embed_dim, v_dim)
        self.out_l_proj = nn.Linear(embed_dim, l_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GLIP's initialisation: Xavier-uniform weights, zero biases."""
        for linear in (self.v_proj, self.l_proj, self.values_v_proj, self.values_l_proj, self.out_v_proj,
                       self.out_l_proj):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    # The host-neutral names of `sdpt.detector.fusion_prompts` (read-only aliases: properties add no modules and no
    # state_dict keys, so the official checkpoint layout is untouched).
    @property
    def vision_proj(self) -> nn.Linear:
        return self.v_proj

    @property
    def text_proj(self) -> nn.Linear:
        return self.l_proj

    @property
    def values_vision_proj(self) -> nn.Linear:
        return self.values_v_proj

    @property
    def values_text_proj(self) -> nn.Linear:
        return self.values_l_proj

    @property
    def out_vision_proj(self) -> nn.Linear:
        return self.out_v_proj

    @property
    def out_text_proj(self) -> nn.Linear:
        return self.out_l_proj

    @property
    def vision_dim(self) -> int:
        return self.v_dim

    @property
    def text_dim(self) -> int:
        return self.l_dim

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        # (B, N, E) -> (B * heads, N, head_dim)
        batch, length, _ = x.shape
        x = x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        return x.reshape(batch * self.num_heads, length, self.head_dim)

    def _merge_heads(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        # (B * heads, N, head_dim) -> (B, N, E)
        length = x.shape[1]
        x = x.view(batch, self.num_heads, length, self.head_dim).transpose(1, 2)
        return x.reshape(batch, length, self.embed_dim)

    def _clamp(self, scores: torch.Tensor) -> torch.Tensor:
        if self.clamp_min_for_underflow:
            scores = scores.clamp(min=-SCORE_CLAMP)
        if self.clamp_max_for_overflow:
            scores = scores.clamp(max=SCORE_CLAMP)
        return scores

    @staticmethod
    def text_mask_bias(attention_mask_l: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The additive (B, Nl) bias GLIP puts on image-side scores: the mask's own value where it is nonzero (so real
        tokens get +1, a shift softmax ignores but which we keep for identical rounding), -9e15 where it is zero.

        Built in at least float32 and then cast, because the official code adds an int64 tensor: in fp16 the -9e15
        becomes -inf there too, without masked_fill's overflow error."""
        work = torch.promote_types(dtype, torch.float32)
        bias = attention_mask_l.to(work).masked_fill(attention_mask_l == 0, TEXT_PAD_SCORE)
        return bias.to(dtype)

    def forward(self, v: torch.Tensor, l: torch.Tensor,
                attention_mask_l: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, num_v, _ = v.shape
        num_l = l.shape[1]
        queries = self._split_heads(self.v_proj(v) * self.scale)
        keys = self._split_heads(self.l_proj(l))
        values_v = self._split_heads(self.values_v_proj(v))
        values_l = self._split_heads(self.values_l_proj(l))

        scores = torch.bmm(queries, keys.transpose(1, 2))  # (B * heads, Nv, Nl)
        if self.stable_softmax_2d:
            scores = scores - scores.max()
        scores = self._clamp(scores)

        # Text side: each text token's row over all image tokens. No mask here: GLIP has no image padding mask, and
        # padded text rows are computed like the others (their outputs are simply never read as real tokens).
        text_scores = scores.transpose(1, 2)
        text_scores = text_scores - text_scores.max(dim=-1, keepdim=True).values
        text_weights = self._clamp(text_scores).softmax(dim=-1)

        # Image side: the text mask is added after the clamps, so padded tokens sit far below -50000.
        if attention_mask_l is not None:
            if attention_mask_l.dim() != 2:
                raise ValueError(f"attention_mask_l must be (batch, text tokens), got {tuple(attention_mask_l.shape)}")
            bias = self.text_mask_bias(attention_mask_l, scores.dtype)
            scores = scores.view(batch, self.num_heads, num_v, num_l) + bias[:, None, None, :]
            scores = scores.view(batch * self.num_heads, num_v, num_l)
        image_weights = scores.softmax(dim=-1)

        image_probs = F.dropout(image_weights, p=self.dropout, training=self.training)
        text_probs = F.dropout(text_weights, p=self.dropout, training=self.training)
        delta_v = self.out_v_proj(self._merge_heads(torch.bmm(image_probs, values_l), batch))
        delta_l = self.out_l_proj(self._merge_heads(torch.bmm(text_probs, values_v), batch))
        return delta_v, delta_l


def _per_sample(tokens: torch.Tensor, batch: int, like: torch.Tensor) -> torch.Tensor:
    # Shared tokens (N, d) are repeated for every sample; per-sample tokens (B, N, d) are used as given.
    tokens = tokens.to(dtype=like.dtype, device=like.device)
    return tokens.unsqueeze(0).expand(batch, -1, -1) if tokens.dim() == 2 else tokens


class BiAttentionBlock(nn.Module):
    """GLIP's fusion block (checkpoint class `BiAttentionBlockForCheckpoint`, attribute `b_attn` of `VLFuse`).

    forward(v (B, Nv, v_dim), l (B, Nl, l_dim), attention_mask_l (B, Nl) or None) -> (v', l') where
        v' = LN_v(v) + drop_path(gamma_v * delta_v),  l' = LN_l(l) + drop_path(gamma_l * delta_l).
    The residual starts from the normalised features, not from the inputs: the block's output replaces them.
    """

    def __init__(self, v_dim: int = GLIP_T_V_DIM, l_dim: int = GLIP_T_L_DIM, embed_dim: int = GLIP_T_EMBED_DIM,
                 num_heads: int = GLIP_T_HEADS, dropout: float = 0.1, drop_path: float = 0.0,
                 init_values: float = 1.0 / GLIP_T_NUM_STAGES, clamp_min_for_underflow: bool = True,
                 clamp_max_for_overflow: bool = True, stable_softmax_2d: bool = False) -> None:
        super().__init__()
        self.layer_norm_v = nn.LayerNorm(v_dim)
        self.layer_norm_l = nn.LayerNorm(l_dim)
        self.attn = BiMultiHeadAttention(v_dim, l_dim, embed_dim, num_heads, dropout=dropout,
                                         clamp_min_for_underflow=clamp_min_for_underflow,
                                         clamp_max_for_overflow=clamp_max_for_overflow,
                                         stable_softmax_2d=stable_softmax_2d)
        # Identity when off, so the module tree (and the checkpoint keys) has no extra entries either way.
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        # Per-channel layer scale; GLIP starts it at 1 / number of dynamic-head stages.
        self.gamma_v = nn.Parameter(torch.full((v_dim,), init_values))
        self.gamma_l = nn.Parameter(torch.full((l_dim,), init_values))

    def attend(self, v: torch.Tensor, l: torch.Tensor, attention_mask_l: torch.Tensor | None = None,
               extra_v: torch.Tensor | None = None,
               extra_l: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The attention updates of the layer-normed `v`, `l`: the place where prompt tokens join.

        extra_v: (N, v_dim) or (B, N, v_dim) tokens appended to the image sequence: keys/values for text queries
            (there is no image mask, so they are always visible).
        extra_l: (N, l_dim) or (B, N, l_dim) tokens appended to the text sequence: keys/values for image queries,
            marked as real tokens in the text mask.
        Extra tokens are taken as they are (not layer-normed), and their own outputs are dropped here, so the
        returned updates have the shapes of `v` and `l`. Without extra tokens this is exactly `self.attn(...)`.
        """
        if extra_v is None and extra_l is None:
            return self.attn(v, l, attention_mask_l=attention_mask_l)
        batch, num_v, num_l = v.shape[0], v.shape[1], l.shape[1]
        if extra_v is not None:
            v = torch.cat([v, _per_sample(extra_v, batch, v)], dim=1)
        if extra_l is not None:
            extra_l = _per_sample(extra_l, batch, l)
            l = torch.cat([l, extra_l], dim=1)
            if attention_mask_l is not None:
                real = attention_mask_l.new_ones(batch, extra_l.shape[1])
                attention_mask_l = torch.cat([attention_mask_l, real], dim=1)
        delta_v, delta_l = self.attn(v, l, attention_mask_l=attention_mask_l)
        return delta_v[:, :num_v], delta_l[:, :num_l]

    def forward(self, v: torch.Tensor, l: torch.Tensor, attention_mask_l: torch.Tensor | None = None,
                extra_v: torch.Tensor | None = None,
                extra_l: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.layer_norm_v(v)
        l = self.layer_norm_l(l)
        delta_v, delta_l = self.attend(v, l, attention_mask_l, extra_v, extra_l)
        # Two separate drop-path calls: each stream gets its own per-sample draw, as in GLIP.
        v = v + self.drop_path(self.gamma_v * delta_v)
        l = l + self.drop_path(self.gamma_l * delta_l)
        return v, l


def flatten_levels(maps: list[torch.Tensor]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """(B, C, H_i, W_i) maps -> one (B, sum H_i W_i, C) sequence, level after level, each row-major over (H, W)."""
    sizes = [(m.shape[2], m.shape[3]) for m in maps]
    return torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1), sizes


def unflatten_levels(sequence: torch.Tensor, sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Inverse of `flatten_levels`: contiguous (B, C, H_i, W_i) maps."""
    batch = sequence.shape[0]
    channels_first = sequence.transpose(1, 2).contiguous()  # (B, C, N)
    pieces = torch.split(channels_first, [h * w for h, w in sizes], dim=2)
    return [p.reshape(batch, -1, h, w).contiguous() for p, (h, w) in zip(pieces, sizes)]


class VLFuse(nn.Module):
    """One early-fusion stage of GLIP's dynamic head (at `rpn.head.dyhead_tower.{0,3,6,...}`), type "MHA-B".

    forward({"visual": [maps (B, v_dim, H_i, W_i)], "lang": {"hidden": (B, Nl, l_dim), "masks": (B, Nl), ...}})
        -> {"visual": [fused maps, same shapes], "lang": {same entries, "hidden": fused (B, Nl, l_dim)}}
    All levels are fused as one image sequence, so every text token sees every level in a single softmax.
    The returned language dict is a shallow copy: the caller's dict is left as it was (the official code overwrites
    `hidden` in place; only its roi-head path, unused by GLIP-T, read the mutated dict afterwards).
    """

    def __init__(self, v_dim: int = GLIP_T_V_DIM, l_dim: int = GLIP_T_L_DIM, embed_dim: int = GLIP_T_EMBED_DIM,
                 num_heads: int = GLIP_T_HEADS, dropout: float = 0.1, drop_path: float = 0.0,
                 init_values: float = 1.0 / GLIP_T_NUM_STAGES, clamp_min_for_underflow: bool = True,
                 clamp_max_for_overflow: bool = True, stable_softmax_2d: bool = False,
                 use_checkpoint: bool = False) -> None:
        super().__init__()
        self.b_attn = BiAttentionBlock(v_dim, l_dim, embed_dim, num_heads, dropout=dropout, drop_path=drop_path,
                                       init_values=init_values, clamp_min_for_underflow=clamp_min_for_underflow,
                                       clamp_max_for_overflow=clamp_max_for_overflow,
                                       stable_softmax_2d=stable_softmax_2d)
        # Recompute the block in the backward pass instead of storing its (B*heads, ~22k, Nl) score tensors
        # (GLIP trains with USE_CHECKPOINT); numerics are unchanged.
        self.use_checkpoint = use_checkpoint

    def forward(self, features: dict[str, Any], extra_v: torch.Tensor | None = None,
                extra_l: torch.Tensor | None = None) -> dict[str, Any]:
        lang = features["lang"]
        sequence, sizes = flatten_levels(list(features["visual"]))
        args = (sequence, lang["hidden"], lang.get("masks"), extra_v, extra_l)
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            v, l = checkpoint(self.b_attn, *args, use_reentrant=False)
        else:
            v, l = self.b_attn(*args)
        return {"visual": unflatten_levels(v, sizes), "lang": {**lang, "hidden": l}}
