"""SDPT: Synchronous Dual Prompt Tuning.

Zhou, Wu et al., "Fusion-based Open-vocabulary Detection with Synchronous Dual Prompt Tuning", ECCV 2024
(arXiv 2407.11414). Learnable prototype tokens U live in each fusion layer's shared attention space (width E);
frozen inverse projections (Moore-Penrose pseudo-inverses of the fusion's `vision_proj` and `text_proj`, bias
removed first) carry U into the image and text token streams, so one set of tokens speaks to both modalities.

What is the paper's: the prototypes U in the shared attention space, their uniform init, one set per fusion layer
(or one shared set), and the frozen pseudo-inverses that carry them into both token streams.

What is ours (`injection`, see sdpt/detector/fusion.py):
- 'branch' (default): the carried tokens do not join the fusion attention's softmax. Each stream's queries attend
  over the other stream's prompt tokens in a softmax of their own, through the layer's frozen value and output
  projections, scaled by tanh of a learned scale per layer, stream and head (per head, and 20 tokens per set: SDPT's
  defaults, chosen on validation draws by benchmarks/default_choice.py) that starts at 0 (zero-init gating as in
  LLaMA-Adapter), and the result is added after the fusion block's layer-scale gamma. Measured reason: gamma is
  0.006-0.011 in the shipped small model, so anything inside the attention was scaled down a hundredfold and tuning
  moved nothing (BENCHMARKS.md). The model starts exactly as the zero-shot model.
- 'shared_gate' (the previous default, and how format-1 prompt files load): the tokens are appended to the
  attention, behind a learned logit gate that starts closed.
- 'paper': appended, ungated, as published.
"""
from __future__ import annotations

import torch
from torch import nn

from sdpt.config import SDPTConfig
from sdpt.methods.fusion_base import FusionPromptMethod, init_tokens


def inverse_projection(linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """(pinv(W)^T, b) of a frozen linear y = x W^T + b, so that x = (y - b) pinv(W)^T maps back to its input."""
    weight = linear.weight.detach().to(torch.float64)
    return torch.linalg.pinv(weight).T.to(torch.float32), linear.bias.detach().to(torch.float32)


class SDPTPrompt(FusionPromptMethod):
    name = "sdpt"
    config_class = SDPTConfig
    default_lr = 1e-1  # chosen by benchmarks/lr_search.py (validation mAP; at 5e-3 the branch barely moves)

    def __init__(self, config: SDPTConfig, detector):
        super().__init__(config, detector)
        fusion = detector.fusion_layers
        sets = 1 if config.shared else len(self.layer_indices)
        self.prototypes = nn.Parameter(init_tokens((sets, config.num_tokens, self.fusion_dims[2]), config))  # (S, N, E)
        # Frozen inverse projections, computed once from the base weights (the prompt file records their fingerprint).
        vision = [inverse_projection(fusion[i].vision_proj) for i in self.layer_indices]
        text = [inverse_projection(fusion[i].text_proj) for i in self.layer_indices]
        self.register_buffer("vision_inverse", torch.stack([w for w, _ in vision]), persistent=False)  # (L, E, d_v)
        self.register_buffer("vision_bias", torch.stack([b for _, b in vision]), persistent=False)  # (L, E)
        self.register_buffer("text_inverse", torch.stack([w for w, _ in text]), persistent=False)  # (L, E, d_l)
        self.register_buffer("text_bias", torch.stack([b for _, b in text]), persistent=False)  # (L, E)
        self.to(detector.device)

    @torch.no_grad()
    def prepare(self, dataset, images) -> None:
        """init='boxes': each prototype set starts as mean image tokens inside training boxes at its layer, mapped
        into the attention space by that layer's frozen `vision_proj` (a choice of boxes, seeded by the run's seed, when there are more
        boxes than tokens; tokens beyond the box count keep their U(-s, s) init). A shared set takes the first
        prompted layer's. The branch starts closed, so the model still starts as the zero-shot model."""
        if self.config.init != "boxes":
            return
        names = self.detector.class_chunks(dataset.class_names)[0]
        chunk = [dataset.class_names[c] for c in names]
        layers = self.layer_indices[:1] if self.config.shared else self.layer_indices
        features = self.detector.box_token_features(images, [s.boxes for s in dataset.samples], chunk, layers)
        for position, index in enumerate(layers):
            boxes = features[index]
            if len(boxes) == 0:
                continue
            count = min(len(boxes), self.config.num_tokens)
            chosen = torch.randperm(len(boxes))[:count]  # seeded by tune's seed
            self.prototypes.data[position, :count] = boxes[chosen].to(self.prototypes.dtype)

    def prototypes_for(self, position: int) -> torch.Tensor:
        return self.prototypes[0 if self.config.shared else position]  # (N, E)

    def injected_tokens(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        units = self.prototypes_for(position)
        vision = (units - self.vision_bias[position]) @ self.vision_inverse[position]  # (N, d_v)
        text = (units - self.text_bias[position]) @ self.text_inverse[position]  # (N, d_l)
        return vision, text
