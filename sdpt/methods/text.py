"""Text prompt tuning: learnable context vectors before every class name, in the text backbone's input space.

After CoOp (Zhou et al., "Learning to Prompt for Vision-Language Models", IJCV 2022): "[V1] ... [VM] class name",
with V shared by all classes. The detector stays frozen; only the context vectors train. Unlike the fusion-layer
methods this one cannot start exactly as the zero-shot model: the context tokens change the text from step 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from sdpt.config import ConfigError
from sdpt.methods.base import PromptMethod


@dataclass
class TextConfig:
    """CoOp-style context: `num_tokens` vectors of the text backbone's width, shared by all classes."""

    num_tokens: int = field(default=4, metadata={"help": "context vectors before each class name"})
    init_std: float = field(default=0.02, metadata={"help": "normal init std (CoOp's)"})

    def validate(self, num_fusion_layers: int) -> None:
        if self.num_tokens < 1:
            raise ConfigError(f"num_tokens must be at least 1, got {self.num_tokens}")


class TextPrompt(PromptMethod):
    name = "text"
    default_lr = 5e-2  # chosen by benchmarks/lr_search.py (BENCHMARKS.md)
    config_class = TextConfig

    def __init__(self, config: TextConfig, detector):
        super().__init__(config, detector)
        config.validate(len(detector.fusion_layers))
        hidden = detector.text_width
        self.context = nn.Parameter(torch.randn(config.num_tokens, hidden) * config.init_std)  # (M, H)
        self._injector = detector.text_context_injector(lambda: self.context)
        self.to(detector.device)

    @property
    def context_tokens(self) -> int:
        return self.config.num_tokens

    @property
    def prompts_text_backbone(self) -> bool:
        return True

    def attach(self) -> None:
        self._injector.attach()

    def detach(self) -> None:
        self._injector.detach()
