"""Naive dual-modal prompts: independent image-stream and text-stream tokens in each prompted fusion layer.

The baseline SDPT's paper argues against (Zhou, Wu et al., ECCV 2024, Sec. 3): two prompt sets learned separately
in each modality's input space, with nothing tying them to one shared meaning.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sdpt.config import FusionPromptConfig
from sdpt.methods.fusion_base import FusionPromptMethod, init_tokens


@dataclass
class DualConfig(FusionPromptConfig):
    """Dual prompts: `num_tokens` image-stream and `num_tokens` text-stream tokens per prompted fusion layer."""


class DualPrompt(FusionPromptMethod):
    name = "dual"
    default_lr = 2e-1  # chosen by benchmarks/lr_search.py (BENCHMARKS.md)
    config_class = DualConfig

    def __init__(self, config: DualConfig, detector):
        super().__init__(config, detector)
        vision_dim, text_dim, _ = self.fusion_dims
        layers = len(self.layer_indices)
        self.vision_tokens = nn.Parameter(init_tokens((layers, config.num_tokens, vision_dim), config))  # (L, N, d_v)
        self.text_tokens = nn.Parameter(init_tokens((layers, config.num_tokens, text_dim), config))  # (L, N, d_l)
        self.to(detector.device)

    def injected_tokens(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vision_tokens[position], self.text_tokens[position]
