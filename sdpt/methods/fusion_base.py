"""Shared machinery of methods that add tokens to the fusion layers: layer choice, the learned gate, attach/detach.

Every such method gets the same gate (a learned attention mass per layer, starting at exp(gate_init)), so each
starts as the zero-shot model and the comparison between them is about the tokens alone.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from sdpt.config import FusionPromptConfig
from sdpt.detector import FusionPromptInjector, FusionPrompts
from sdpt.methods.base import PromptMethod


def init_tokens(shape: tuple[int, ...], config: FusionPromptConfig) -> torch.Tensor:
    tokens = torch.empty(shape)
    if config.init == "uniform":
        return nn.init.uniform_(tokens, -config.init_scale, config.init_scale)
    return nn.init.normal_(tokens, 0.0, config.init_scale)


class FusionPromptMethod(PromptMethod):
    """Base class: subclasses say which (N, d_v) image-stream and (N, d_l) text-stream tokens a layer gets."""

    def __init__(self, config: FusionPromptConfig, detector):
        super().__init__(config, detector)
        fusion = detector.fusion_layers
        config.validate(len(fusion))
        self.layer_indices = sorted({i % len(fusion) for i in (config.layers or range(len(fusion)))})
        # Gates are learned as attention *mass* g (logit offset log|g|): the prompts' share of attention, and with
        # it their gradients, then grow linearly under Adam instead of exponentially as a learned offset would.
        self.gates = nn.Parameter(torch.full((len(self.layer_indices),), math.exp(config.gate_init)))
        self._injector = FusionPromptInjector(detector, self.layer_indices, self.prompts_for)

    @property
    def first_prompted_layer(self) -> int:
        return self.layer_indices[0]

    @property
    def fusion_dims(self) -> tuple[int, int, int]:
        """(vision width d_v, text width d_l, shared attention width E) of the fusion layers."""
        attn = self.detector.fusion_layers[0]
        return attn.vision_dim, attn.text_dim, attn.embed_dim

    def injected_tokens(self, position: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The image-stream and text-stream tokens of the `position`-th prompted layer (None = none)."""
        raise NotImplementedError

    def layer_prompts(self, position: int, vision_features, text_features, text_padding) -> FusionPrompts:
        """Prompts for one layer; methods whose tokens depend on the layer's inputs override this."""
        vision, text = self.injected_tokens(position)
        return FusionPrompts(vision=vision, text=text, image_sees_text_prompts=self.config.image_sees_text_prompts)

    def param_groups(self, lr: float) -> list[dict]:
        others = [p for name, p in self.named_parameters() if p.requires_grad and name != "gates"]
        return [{"params": others, "lr": lr}, {"params": [self.gates], "lr": lr * self.config.gate_lr_scale}]

    def prompts_for(self, layer_index: int, vision_features=None, text_features=None, text_padding=None
                    ) -> FusionPrompts:
        position = self.layer_indices.index(layer_index)
        prompts = self.layer_prompts(position, vision_features, text_features, text_padding)
        prompts.gate = torch.log(self.gates[position].abs() + 1e-30)
        return prompts

    def attach(self) -> None:
        self._injector.attach()

    def detach(self) -> None:
        self._injector.detach()
