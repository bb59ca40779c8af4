"""Shared machinery of methods that add tokens to the fusion layers: layer choice, how the tokens act, attach/detach.

Every such method acts through the same injection (`config.injection`, see sdpt/detector/fusion.py), so each starts
as the zero-shot model and the comparison between them is about the tokens alone:
- 'branch' (default): learned branch scales per layer and stream (or per head), tanh-squashed, starting at 0;
- 'shared_gate': a learned attention mass per layer, starting at exp(gate_init);
- 'paper': no gate.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from sdpt.config import FusionPromptConfig
from sdpt.detector import FusionPrompts
from sdpt.methods.base import PromptMethod


def init_tokens(shape: tuple[int, ...], config: FusionPromptConfig) -> torch.Tensor:
    tokens = torch.empty(shape)
    if config.init in ("uniform", "boxes"):  # 'boxes' replaces rows later (SDPTPrompt.prepare)
        return nn.init.uniform_(tokens, -config.init_scale, config.init_scale)
    return nn.init.normal_(tokens, 0.0, config.init_scale)


class FusionPromptMethod(PromptMethod):
    """Base class: subclasses say which (N, d_v) image-stream and (N, d_l) text-stream tokens a layer gets."""

    def __init__(self, config: FusionPromptConfig, detector):
        super().__init__(config, detector)
        fusion = detector.fusion_layers
        config.validate(len(fusion))
        self.layer_indices = sorted({i % len(fusion) for i in (config.layers or range(len(fusion)))})
        layers = len(self.layer_indices)
        if config.injection == "shared_gate":
            # Gates are learned as attention *mass* g (logit offset log|g|): the prompts' share of attention, and with
            # it their gradients, then grow linearly under Adam instead of exponentially as a learned offset would.
            self.gates = nn.Parameter(torch.full((layers,), math.exp(config.gate_init)))
        elif config.injection == "branch":
            # tanh(0) = 0: the branch adds exactly nothing until tuning moves a scale (zero-init gating, as in
            # LLaMA-Adapter), and its first gradients go to the scales alone.
            heads = fusion[0].num_heads if config.per_head_scales else 1
            self.branch_scales = nn.Parameter(torch.zeros(layers, 2, heads))  # (L, image/text stream, heads)
        self._injector = detector.prompt_injector(self.layer_indices, self.prompts_for)

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

    def _gate(self) -> nn.Parameter | None:
        """The gates ('shared_gate') or the branch scales ('branch'); the 'paper' injection has none."""
        return next((getattr(self, name) for name in ("gates", "branch_scales") if hasattr(self, name)), None)

    def param_groups(self, lr: float) -> list[dict]:
        gate = self._gate()
        others = [p for p in self.parameters() if p.requires_grad and p is not gate]
        groups = [{"params": others, "lr": lr}]
        if gate is not None:
            groups.append({"params": [gate], "lr": lr * self.config.gate_lr_scale})
        return groups

    def prompts_for(self, layer_index: int, vision_features=None, text_features=None, text_padding=None
                    ) -> FusionPrompts:
        position = self.layer_indices.index(layer_index)
        prompts = self.layer_prompts(position, vision_features, text_features, text_padding)
        prompts.text_sees_image_prompts = self.config.text_sees_image_prompts
        if self.config.injection == "shared_gate":
            prompts.gate = torch.log(self.gates[position].abs() + 1e-30)
        elif self.config.injection == "branch":
            scales = torch.tanh(self.branch_scales[position])  # (2, heads)
            prompts.branch_scales = (scales[0], scales[1])
        return prompts

    def attach(self) -> None:
        self._injector.attach()

    def detach(self) -> None:
        self._injector.detach()
