"""SDPT: Synchronous Dual Prompt Tuning.

Zhou, Wu et al., "Fusion-based Open-vocabulary Detection with Synchronous Dual Prompt Tuning", ECCV 2024
(arXiv 2407.11414). Learnable prototype tokens U live in each fusion layer's shared attention space (width E);
frozen inverse projections (Moore-Penrose pseudo-inverses of the fusion's `vision_proj` and `text_proj`, bias
removed first) carry U into the image and text token streams, so one set of tokens speaks to both modalities.

A learnable per-layer gate (a logit offset log|g| on every attention score that involves a prototype, g starting
at e^-10) is our addition: it makes the prompted model start as the zero-shot model instead of letting
randomly initialised prototypes take most of the attention before any training.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from sdpt.config import SDPTConfig
from sdpt.detector import FusionPromptInjector, FusionPrompts
from sdpt.methods.base import PromptMethod


def inverse_projection(linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """(pinv(W)^T, b) of a frozen linear y = x W^T + b, so that x = (y - b) pinv(W)^T maps back to its input."""
    weight = linear.weight.detach().to(torch.float64)
    return torch.linalg.pinv(weight).T.to(torch.float32), linear.bias.detach().to(torch.float32)


class SDPTPrompt(PromptMethod):
    name = "sdpt"
    config_class = SDPTConfig

    def __init__(self, config: SDPTConfig, detector):
        super().__init__(config, detector)
        fusion = detector.fusion_layers
        config.validate(len(fusion))
        self.layer_indices = sorted({i % len(fusion) for i in (config.layers or range(len(fusion)))})
        embed_dim = fusion[0].embed_dim  # width of the shared attention space
        sets = 1 if config.shared else len(self.layer_indices)
        prototypes = torch.empty(sets, config.num_tokens, embed_dim)  # (sets, N, E)
        if config.init == "uniform":
            nn.init.uniform_(prototypes, -config.init_scale, config.init_scale)
        else:
            nn.init.normal_(prototypes, 0.0, config.init_scale)
        self.prototypes = nn.Parameter(prototypes)
        # Gates are learned as attention *mass* g (logit offset log|g|): the prompts' share of attention, and with
        # it their gradients, then grow linearly under Adam instead of exponentially as a learned offset would.
        self.gates = nn.Parameter(torch.full((len(self.layer_indices),), math.exp(config.gate_init)))
        # Frozen inverse projections, computed once from the base weights (the prompt file records their fingerprint).
        vision = [inverse_projection(fusion[i].vision_proj) for i in self.layer_indices]
        text = [inverse_projection(fusion[i].text_proj) for i in self.layer_indices]
        self.register_buffer("vision_inverse", torch.stack([w for w, _ in vision]), persistent=False)  # (L, E, d_v)
        self.register_buffer("vision_bias", torch.stack([b for _, b in vision]), persistent=False)  # (L, E)
        self.register_buffer("text_inverse", torch.stack([w for w, _ in text]), persistent=False)  # (L, E, d_l)
        self.register_buffer("text_bias", torch.stack([b for _, b in text]), persistent=False)  # (L, E)
        self.to(detector.device)
        self._injector = FusionPromptInjector(detector, self.layer_indices, self.prompts_for)

    @property
    def first_prompted_layer(self) -> int:
        return self.layer_indices[0]

    def param_groups(self, lr: float) -> list[dict]:
        return [{"params": [self.prototypes], "lr": lr},
                {"params": [self.gates], "lr": lr * self.config.gate_lr_scale}]

    def prototypes_for(self, position: int) -> torch.Tensor:
        return self.prototypes[0 if self.config.shared else position]  # (N, E)

    def injected_tokens(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (N, d_v) image-stream and (N, d_l) text-stream tokens of the `position`-th prompted layer."""
        units = self.prototypes_for(position)
        vision = (units - self.vision_bias[position]) @ self.vision_inverse[position]
        text = (units - self.text_bias[position]) @ self.text_inverse[position]
        return vision, text

    def prompts_for(self, layer_index: int) -> FusionPrompts:
        position = self.layer_indices.index(layer_index)
        vision, text = self.injected_tokens(position)
        gate = torch.log(self.gates[position].abs() + 1e-30)
        return FusionPrompts(vision=vision, text=text, gate=gate,
                             image_sees_text_prompts=self.config.image_sees_text_prompts)

    def attach(self) -> None:
        self._injector.attach()

    def detach(self) -> None:
        self._injector.detach()
