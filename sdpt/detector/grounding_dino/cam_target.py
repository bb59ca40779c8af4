"""What a class-specific CAM needs from Grounding DINO: the feature map to explain and a model from pixels to
per-class scores (the best query's phrase probability), for pytorch-grad-cam to differentiate."""
from __future__ import annotations

import torch
from torch import nn

from sdpt.detector.grounding_dino.postprocess import phrase_scores

# input_proj_vision[0] is the stride-8 backbone level projected to d_model, the finest map entering the encoder.
# Its gradients pass through the fusion layers, so the map depends on the class (and on the prompt).
CAM_LEVEL = 0


def cam_layer(model: nn.Module, level: int = CAM_LEVEL) -> nn.Module:
    return model.model.input_proj_vision[level]


def cam_layer_name(level: int = CAM_LEVEL) -> str:
    return f"model.input_proj_vision[{level}]"


class ClassScores(nn.Module):
    """pixel_values (1, 3, H, W) -> (1, classes): each class's score at its best query, for one encoded prompt."""

    def __init__(self, model: nn.Module, batch, level: int = CAM_LEVEL):
        super().__init__()
        self.model = model
        # The detector is frozen, so nothing in it carries gradients. Make the explained map a leaf that does:
        # the backward pass then stops there instead of running through the frozen backbones.
        self._hook = cam_layer(model, level).register_forward_hook(
            lambda _module, _inputs, output: output.detach().requires_grad_(True))
        self.text_inputs = {k: v for k, v in batch.inputs.items() if k not in ("pixel_values", "pixel_mask")}
        self.pixel_mask = batch.inputs.get("pixel_mask")
        self.phrase_map = batch.phrase_maps[0]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        outputs = self.model(pixel_values=pixel_values, pixel_mask=self.pixel_mask, **self.text_inputs)
        return phrase_scores(outputs.logits[0].float(), self.phrase_map).max(dim=0).values[None]

    def close(self) -> None:
        self._hook.remove()
