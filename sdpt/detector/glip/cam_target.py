"""What a class-specific CAM needs from GLIP: the feature map to explain and a model from pixels to per-class scores
(each class's best anchor, scored as GLIP's post-processing ranks anchors), for pytorch-grad-cam to differentiate.

The explained map is an FPN output level as it enters the dynamic head, by default P3 (stride 8, the finest), the
output of `backbone.fpn.fpn_layer2`. Its gradients pass through the fusion layers, so the map depends on the class
(and on the prompt).
"""
from __future__ import annotations

import torch
from torch import nn

from sdpt.detector.glip.fpn import FIRST_MODULE_INDEX
from sdpt.detector.glip.postprocess import class_scores
from sdpt.detector.host import CamTarget

CAM_LEVEL = 0  # P3
# The modules whose outputs are P3..P7: the FPN's output convs (numbered from 2 in GLIP's checkpoint) for the
# levels read from the Swin, then its two extra levels.
_LEVEL_MODULES = tuple(f"backbone.fpn.fpn_layer{FIRST_MODULE_INDEX + k}" for k in range(3)) + (
    "backbone.fpn.top_blocks.p6", "backbone.fpn.top_blocks.p7")


def cam_layer_name(level: int = CAM_LEVEL) -> str:
    """The module path, in a `GlipModel`, of the module whose output is FPN level `level` (0 = P3 ... 4 = P7)."""
    if not 0 <= level < len(_LEVEL_MODULES):
        raise ValueError(f"GLIP has FPN levels 0..{len(_LEVEL_MODULES) - 1}, not {level}")
    return _LEVEL_MODULES[level]


def cam_layer(model: nn.Module, level: int = CAM_LEVEL) -> nn.Module:
    """The module of a `GlipModel` whose output is FPN level `level` as it enters the dynamic head."""
    return model.get_submodule(cam_layer_name(level))


class ClassScores(nn.Module):
    """pixel_values (1, 3, H, W) -> (1, classes): for one encoded prompt, each class's best score over all anchors,
    the score being what GLIP's post-processing ranks: the mean sigmoid probability of the class's tokens times the
    anchor's sigmoid(centerness). (Detections report its square root; Grad-CAM's normalised map is the same either
    way, and the product keeps finite gradients where a score underflows to 0.)"""

    def __init__(self, model: nn.Module, batch, level: int = CAM_LEVEL):
        super().__init__()
        self.model = model
        device = next(model.parameters()).device
        # The detector is frozen, so nothing in it carries gradients. Make the explained map a leaf that does:
        # the backward pass then stops there instead of running through the frozen backbone.
        self._hook = cam_layer(model, level).register_forward_hook(
            lambda _module, _inputs, output: output.detach().requires_grad_(True))
        self.input_ids = batch.input_ids[:1].to(device)
        self.attention_mask = batch.attention_mask[:1].to(device)
        self.class_map = batch.class_maps[0].to(device)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # The explained map is cut off from the pixels anyway (the hook above), so no graph is recorded through the
        # backbone even when the caller's pixels require grad (pytorch-grad-cam's do).
        predictions = self.model(pixel_values.detach(), self.input_ids, self.attention_mask).predictions
        token_probs = predictions.dot_product_logits[0].float().sigmoid()  # (A, T)
        centre_probs = predictions.flat_centerness()[0].float().sigmoid()  # (A,)
        ranked = class_scores(token_probs, self.class_map) * centre_probs[:, None]  # (A, C)
        return ranked.max(dim=0).values[None]

    def close(self) -> None:
        self._hook.remove()


def cam_target(detector, batch, level: int | None = None) -> CamTarget:
    """Grad-CAM's model, layer and input for the first image of an encoded `GlipBatch`; `valid` is the resized
    image's (rows, columns), the rest of the input being GLIP's padding to a multiple of `size_divisibility`."""
    level = CAM_LEVEL if level is None else level
    device = next(detector.model.parameters()).device
    rows, cols = batch.resized_sizes[0]
    return CamTarget(ClassScores(detector.model, batch, level), cam_layer(detector.model, level),
                     batch.pixel_values[:1].to(device), (int(rows), int(cols)))
