"""DPT: text prompts plus class-aware visual prompts made by cross-attention between text and image tokens.

Xing et al., "Dual Modality Prompt Tuning for Vision-Language Pre-Trained Model" (IEEE TMM 2023), whose
class-aware visual prompts (CAVPT) are built by cross-attention with the text prompts' features as queries
and the image tokens as keys and values. Here: CoOp-style context vectors in the text input (as in `text`), and
in each prompted fusion layer every text token entering it (each belongs to a class phrase) queries the image
tokens; the answers become extra image-stream tokens, one per text token, through the method's injection (the
branch after gamma by default). Text padding gives padding tokens. `num_tokens` is not used: the class list sets
the count.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from sdpt.config import FusionPromptConfig
from sdpt.detector import FusionPrompts
from sdpt.methods.fusion_base import FusionPromptMethod


@dataclass
class DPTConfig(FusionPromptConfig):
    """DPT: `context_tokens` text context vectors and class-aware visual prompts in the prompted fusion layers."""

    context_tokens: int = field(default=4, metadata={"help": "CoOp-style context vectors before each class name"})
    heads: int = field(default=4, metadata={"help": "heads of the class-aware cross-attention"})
    layers: list[int] | None = field(default_factory=lambda: [-1], metadata={
        "help": "fusion layers that get class-aware visual prompts (default: the last)"})


class DPTPrompt(FusionPromptMethod):
    name = "dpt"
    default_lr = 5e-3  # chosen by benchmarks/lr_search.py (BENCHMARKS.md)
    config_class = DPTConfig

    def __init__(self, config: DPTConfig, detector):
        super().__init__(config, detector)
        vision_dim, text_dim, _ = self.fusion_dims
        hidden = detector.text_width
        self.context = nn.Parameter(torch.randn(config.context_tokens, hidden) * 0.02)  # (M, H)
        self.cross = nn.ModuleList(
            nn.MultiheadAttention(vision_dim, config.heads, kdim=vision_dim, vdim=vision_dim, batch_first=True)
            for _ in self.layer_indices)
        self.query = nn.ModuleList(nn.Linear(text_dim, vision_dim) for _ in self.layer_indices)
        self._text = detector.text_context_injector(lambda: self.context)
        self.to(detector.device)

    @property
    def context_tokens(self) -> int:
        return self.config.context_tokens

    @property
    def prompts_text_backbone(self) -> bool:
        return True

    def layer_prompts(self, position, vision_features, text_features, text_padding) -> FusionPrompts:
        queries = self.query[position](text_features)  # (B, T, d_v): one query per text token
        tokens, _ = self.cross[position](queries, vision_features, vision_features, need_weights=False)  # (B, T, d_v)
        return FusionPrompts(vision=tokens, text=None, vision_padding=text_padding,
                             image_sees_text_prompts=self.config.image_sees_text_prompts)

    def attach(self) -> None:
        self._text.attach()
        super().attach()

    def detach(self) -> None:
        super().detach()
        self._text.detach()
