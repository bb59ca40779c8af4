"""Full fine-tuning: every detector weight trains. The upper bound on parameters that prompt methods are held to.

DETR-style detectors are fine-tuned end to end in Carion et al. (ECCV 2020) and Liu et al. (Grounding DINO,
2023). Here the trained weights live in a copy of the model that `attach()` swaps in and `detach()` swaps out,
so the zero-shot model stays available, unchanged, next to the tuned one.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from sdpt.methods.base import PromptMethod


@dataclass
class FullConfig:
    """Full fine-tuning has no options of its own."""

    def validate(self, num_fusion_layers: int) -> None:
        return None


class FullFineTune(PromptMethod):
    name = "full"
    config_class = FullConfig
    cacheable = False  # every part of the model changes, so nothing can be cached
    default_lr = 3e-4  # chosen by benchmarks/lr_search.py (BENCHMARKS.md); 1e-3 collapses

    def __init__(self, config: FullConfig, detector):
        super().__init__(config, detector)
        self.tuned = copy.deepcopy(detector.model)
        for param in self.tuned.parameters():
            param.requires_grad_(True)
        self._original = None

    def attach(self) -> None:
        if self._original is None:
            self._original = self.detector.model
            self.detector.model = self.tuned

    def detach(self) -> None:
        if self._original is not None:
            self.detector.model = self._original
            self._original = None

    def train(self, mode: bool = True):
        # Keep the copy in eval mode: dropout and drop-path off, as for the frozen methods (a fair comparison).
        super().train(mode)
        self.tuned.eval()
        return self
