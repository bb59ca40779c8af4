"""UPT: one shared prompt turned into text and visual prompts by a lightweight transformer.

Zang et al., "Unified Vision and Language Prompt Learning" (arXiv 2210.07225, 2022). Here the shared prompt of
each prompted fusion layer passes through one small self-attention block, and two linear heads map it into the
fusion layer's image and text streams.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from sdpt.config import FusionPromptConfig
from sdpt.methods.fusion_base import FusionPromptMethod, init_tokens


@dataclass
class UPTConfig(FusionPromptConfig):
    """UPT: a shared prompt of `num_tokens` x `width`, a one-block transformer, and two output heads."""

    width: int | None = field(default=None, metadata={
        "help": "width of the shared prompt and its transformer (None = the fusion layer's image width)"})
    heads: int = field(default=4, metadata={"help": "attention heads of the transformer block"})


class UPTPrompt(FusionPromptMethod):
    name = "upt"
    default_lr = 2e-2  # chosen by benchmarks/lr_search.py (BENCHMARKS.md)
    config_class = UPTConfig

    def __init__(self, config: UPTConfig, detector):
        super().__init__(config, detector)
        vision_dim, text_dim, _ = self.fusion_dims
        layers, width = len(self.layer_indices), config.width or vision_dim
        self.shared = nn.Parameter(init_tokens((layers, config.num_tokens, width), config))  # (L, N, w)
        self.block = nn.TransformerEncoderLayer(width, config.heads, dim_feedforward=2 * width, dropout=0.0,
                                                batch_first=True)
        self.to_vision = nn.Linear(width, vision_dim)
        self.to_text = nn.Linear(width, text_dim)
        self.to(detector.device)

    def injected_tokens(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        mixed = self.block(self.shared[position].unsqueeze(0)).squeeze(0)  # (N, w)
        return self.to_vision(mixed), self.to_text(mixed)
