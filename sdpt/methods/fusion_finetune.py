"""Fusion fine-tuning: the fusion layers' attention weights and layer-scales train, everything else stays frozen.

The upper bound for methods that act in the fusion layers: it may change anything there, where prompts can only add
tokens. Trained copies of the fusion blocks are swapped in by `attach()` and out by `detach()`, so the zero-shot
model stays available, unchanged, next to the tuned one. Not a method from the SDPT paper; a benchmark row.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import nn

from sdpt.methods.base import PromptMethod


@dataclass
class FusionFineTuneConfig:
    """Fusion fine-tuning has no options of its own."""

    def validate(self, num_fusion_layers: int) -> None:
        return None


class FusionFineTune(PromptMethod):
    name = "fusion"
    config_class = FusionFineTuneConfig
    default_lr = 3e-3  # chosen by benchmarks/lr_search.py (BENCHMARKS.md)

    def __init__(self, config: FusionFineTuneConfig, detector):
        super().__init__(config, detector)
        self.blocks = nn.ModuleList(copy.deepcopy(block) for block in detector.fusion_blocks)
        for block in self.blocks:
            for param in block.parameters():
                param.requires_grad_(False)
            for param in detector.fusion_block_parameters(block):
                param.requires_grad_(True)  # attention + gamma; the layer norms stay as they are
        self._originals: list[nn.Module] | None = None

    def attach(self) -> None:
        if self._originals is None:
            self._originals = self.detector.replace_fusion_blocks(list(self.blocks))

    def detach(self) -> None:
        if self._originals is not None:
            self.detector.replace_fusion_blocks(self._originals)
            self._originals = None

    def train(self, mode: bool = True):
        # The copies stay in eval mode (drop-path and dropout off), as the frozen model does for every method.
        super().train(mode)
        self.blocks.eval()
        return self
