"""The output layers of GLIP's VLDyHead (ATSS-style box regression and centerness, token-level dot-product logits),
under the checkpoint's names relative to `rpn.head`:

    log_scale (1,), bias_lang (lang_dim,), bias0 (1,)
    cls_logits.{weight,bias}                     (A * (num_classes - 1), channels, 1, 1): loaded, never used
    bbox_pred.{weight,bias}, centerness.{weight,bias}
    dot_product_projection_text.{weight,bias}    (A * channels, lang_dim)
    scales.{0..4}.scale                          per-level factor on the box regression

The parameters sit directly on `HeadOutputs`, so the full head can subclass it (and add `dyhead_tower`) to keep the
`rpn.head.*` names flat, as upstream.

What `forward` computes, as GLIP does with USE_DOT_PRODUCT_TOKEN_LOSS and CLAMP_DOT_PRODUCT (GLIP-T's config):
- box regression per level: scales[l] * bbox_pred(x_l), raw. No relu or exp here: the exp of the size deltas is
  the box coder's job at decoding (weights 10, 10, 5, 5 and +1 widths upstream).
- centerness per level: centerness(x_l), logits (sigmoid at inference).
- token logits: e = L2-normalise(text embedding) over the feature axis; tokens = dot_product_projection_text(e / 2);
  token bias = e @ bias_lang + bias0; per level, the image side is the map itself (upstream's image projection is
  the identity, and it is NOT normalised) flattened to (B, H*W, C) in row-major (y, x) order;
  logits = (image @ tokens^T) / exp(log_scale) + token bias, clamped to [-50000, 50000]; levels are concatenated
  finest first into (B, sum H*W, T).
The text mask plays no part in these logits upstream (padded tokens get logits like any other; the loss and the
label-to-token map are what ignore them), so `forward` takes none.
With USE_FUSED_FEATURES_DOT_PRODUCT (on for GLIP-T) the embedding to pass is the tower's fused language hidden
state, not the BERT output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


DOT_PRODUCT_CLAMP = 50000.0  # upstream's bound against fp16 overflow of the logits


class Scale(nn.Module):
    """A learned scalar factor (maskrcnn_benchmark's `Scale`), parameter `scale`."""

    def __init__(self, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([init_value], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


@dataclass
class HeadPredictions:
    """What the head gives the ATSS post-processor.

    box_regression: per level (B, 4 * A, H, W) raw deltas (after the level's scale).
    centerness: per level (B, A, H, W) logits.
    dot_product_logits: (B, sum over levels of H * W, T), levels finest first, locations row-major.
    level_sizes: the (H, W) of each level, to split dot_product_logits back per level.
    """

    box_regression: list[torch.Tensor]
    centerness: list[torch.Tensor]
    dot_product_logits: torch.Tensor
    level_sizes: list[tuple[int, int]]

    @property
    def level_counts(self) -> list[int]:
        """Locations (= anchors, one per location) per level, finest first."""
        return [h * w for h, w in self.level_sizes]

    def level_logits(self) -> list[torch.Tensor]:
        return list(self.dot_product_logits.split(self.level_counts, dim=1))

    def flat_box_regression(self) -> torch.Tensor:
        """(B, sum H*W, 4), in the order of the flat logits and of the concatenated grid anchors."""
        return torch.cat([r.permute(0, 2, 3, 1).reshape(r.shape[0], -1, 4) for r in self.box_regression], dim=1)

    def flat_centerness(self) -> torch.Tensor:
        """(B, sum H*W) centerness logits, same order."""
        return torch.cat([c.reshape(c.shape[0], -1) for c in self.centerness], dim=1)


class HeadOutputs(nn.Module):
    """GLIP's head output layers with its initialisation; see the module docstring for the formulas.

    num_classes counts the background (GLIP's MODEL.DYHEAD.NUM_CLASSES, 81), so cls_logits has num_classes - 1
    outputs per anchor. GLIP's dot product pairs each location's `channels` features with each token's
    A * channels projection, which only lines up for one anchor per location, so num_anchors must be 1.
    """

    def __init__(
        self,
        channels: int = 256,
        lang_dim: int = 768,
        num_classes: int = 81,
        num_anchors: int = 1,
        num_levels: int = 5,
        prior_prob: float = 0.01,
        log_scale: float = 0.0,
        clamp_dot_product: bool = True,
    ) -> None:
        super().__init__()
        if num_anchors != 1:
            raise ValueError(f"GLIP's token dot product needs one anchor per location, not {num_anchors}")
        self.clamp_dot_product = clamp_dot_product
        # Focal-loss prior: a logit whose sigmoid is prior_prob, so training starts with few positives.
        bias_value = -math.log((1.0 - prior_prob) / prior_prob)

        self.cls_logits = nn.Conv2d(channels, num_anchors * (num_classes - 1), kernel_size=1)
        self.bbox_pred = nn.Conv2d(channels, num_anchors * 4, kernel_size=1)
        self.centerness = nn.Conv2d(channels, num_anchors, kernel_size=1)
        for conv in (self.cls_logits, self.bbox_pred, self.centerness):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        nn.init.constant_(self.cls_logits.bias, bias_value)
        self.scales = nn.ModuleList([Scale(1.0) for _ in range(num_levels)])

        # nn.Linear's default init, as upstream.
        self.dot_product_projection_text = nn.Linear(lang_dim, num_anchors * channels)
        self.log_scale = nn.Parameter(torch.tensor([log_scale], dtype=torch.float32))
        self.bias_lang = nn.Parameter(torch.zeros(lang_dim))
        self.bias0 = nn.Parameter(torch.tensor([bias_value], dtype=torch.float32))

    def token_projection(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, lang_dim) -> projected tokens (B, T, channels) and per-token bias (B, T)."""
        normalised = F.normalize(embedding, p=2, dim=-1)
        tokens = self.dot_product_projection_text(normalised / 2.0)
        token_bias = torch.matmul(normalised, self.bias_lang) + self.bias0
        return tokens, token_bias

    def level_dot_product(
        self, feature: torch.Tensor, tokens: torch.Tensor, token_bias: torch.Tensor
    ) -> torch.Tensor:
        """One level's (B, C, H, W) map against projected tokens -> (B, H*W, T) logits."""
        batch, channels = feature.shape[:2]
        queries = feature.permute(0, 2, 3, 1).reshape(batch, -1, channels)
        logits = torch.matmul(queries, tokens.transpose(-1, -2)) / self.log_scale.exp() + token_bias[:, None, :]
        if self.clamp_dot_product:
            logits = logits.clamp(min=-DOT_PRODUCT_CLAMP, max=DOT_PRODUCT_CLAMP)
        return logits

    def forward(self, features: list[torch.Tensor], embedding: torch.Tensor) -> HeadPredictions:
        """features: the tower's final maps, (B, channels, H_l, W_l) finest first; embedding: (B, T, lang_dim)."""
        if len(features) != len(self.scales):
            raise ValueError(f"{len(features)} feature levels for {len(self.scales)} scales")
        tokens, token_bias = self.token_projection(embedding)
        box_regression = [scale(self.bbox_pred(x)) for scale, x in zip(self.scales, features)]
        centerness = [self.centerness(x) for x in features]
        logits = torch.cat([self.level_dot_product(x, tokens, token_bias) for x in features], dim=1)
        return HeadPredictions(
            box_regression=box_regression,
            centerness=centerness,
            dot_product_logits=logits,
            level_sizes=[(int(x.shape[-2]), int(x.shape[-1])) for x in features],
        )
