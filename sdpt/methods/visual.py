"""Visual prompt tuning: learnable tokens added to each prompted fusion layer's image stream, learned there directly.

After VPT-deep (Jia et al., "Visual Prompt Tuning", ECCV 2022), placed where a fusion detector's image tokens meet
the text: the tokens are keys and values for the text queries of the bi-directional attention.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sdpt.config import FusionPromptConfig
from sdpt.methods.fusion_base import FusionPromptMethod, init_tokens


@dataclass
class VisualConfig(FusionPromptConfig):
    """Visual prompts: `num_tokens` image-stream tokens per prompted fusion layer."""


class VisualPrompt(FusionPromptMethod):
    name = "visual"
    default_lr = 5e-2  # chosen by benchmarks/lr_search.py (BENCHMARKS.md)
    config_class = VisualConfig

    def __init__(self, config: VisualConfig, detector):
        super().__init__(config, detector)
        vision_dim = self.fusion_dims[0]
        self.vision_tokens = nn.Parameter(init_tokens((len(self.layer_indices), config.num_tokens, vision_dim), config))
        self.to(detector.device)

    def injected_tokens(self, position: int) -> tuple[torch.Tensor, None]:
        return self.vision_tokens[position], None  # (N, d_v)
