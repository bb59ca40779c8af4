"""GLIP's VLDyHead: the tower of `layers` x [image-text fusion (VLFuse), a BERT layer on the text, DyConv on the image
levels] at `rpn.head.dyhead_tower.{0..3*layers-1}`, then the output layers (HeadOutputs) on the fused maps and the
fused text. The text tokens the logits are computed against are the tower's fused text (GLIP-T's
USE_FUSED_FEATURES_DOT_PRODUCT)."""
from __future__ import annotations

import torch
from torch import nn

from sdpt.detector.glip.dyconv import DyConv
from sdpt.detector.glip.fusion import VLFuse
from sdpt.detector.glip.head_outputs import HeadOutputs, HeadPredictions
from sdpt.detector.glip.language import TextLayer


class VLDyHead(HeadOutputs):
    """The head under `rpn.head`: its output layers are HeadOutputs' own parameters (flat names, as upstream)."""

    def __init__(self, bert_config, layers: int, channels: int, embed_dim: int, heads: int, num_levels: int,
                 num_classes: int, use_checkpoint: bool = False, fusion_dropout: float = 0.1):
        super().__init__(channels=channels, lang_dim=bert_config.hidden_size, num_classes=num_classes,
                         num_levels=num_levels)
        tower = []
        for _ in range(layers):
            # gamma starts at 1 / layers: GLIP-T's 1/6 (init_values = 1.0 / NUM_CONVS)
            tower.append(VLFuse(channels, bert_config.hidden_size, embed_dim, heads, dropout=fusion_dropout,
                                init_values=1.0 / layers, use_checkpoint=use_checkpoint))
            tower.append(TextLayer(bert_config))
            tower.append(DyConv(channels, channels))
        self.dyhead_tower = nn.ModuleList(tower)

    @property
    def fusion_layers(self) -> list[VLFuse]:
        """The fusion blocks, first to last (what prompt methods inject into)."""
        return [module for module in self.dyhead_tower if isinstance(module, VLFuse)]

    def forward(self, features: list[torch.Tensor], language: dict) -> HeadPredictions:
        state = {"visual": list(features), "lang": dict(language)}
        for module in self.dyhead_tower:
            if isinstance(module, VLFuse):
                state = module(state)
            elif isinstance(module, TextLayer):
                state["lang"] = {**state["lang"], "hidden": module(state["lang"]["hidden"], state["lang"]["masks"])}
            else:
                state["visual"] = module(state["visual"])
        return super().forward(state["visual"], state["lang"]["hidden"])
