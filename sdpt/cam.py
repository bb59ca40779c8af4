"""Class-specific heat-maps (CAM) of where a detector, zero-shot or prompted, looks for one class, through
pytorch-grad-cam: Grad-CAM on the finest image feature map entering the encoder, target = the class's best score.

Grad-CAM rather than EigenCAM or a plain activation map because those do not depend on the class; the cost is one
forward and one backward pass per map (the backbones are frozen, only activations get gradients).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from sdpt.data import load_image
from sdpt.detector import encode_batch
from sdpt.detector.grounding_dino.cam_target import CAM_LEVEL, ClassScores, cam_layer, cam_layer_name
from sdpt.methods import PromptMethod


def describe_cam(detector=None) -> str:
    return (f"Grad-CAM on {cam_layer_name()} (stride-8 image features entering the encoder), target = the class's "
            f"best query score; one forward + backward pass per map")


def class_cam(detector, image: Image.Image | str | Path, class_names: Sequence[str], class_index: int,
              prompt: PromptMethod | None = None, level: int = CAM_LEVEL) -> np.ndarray:
    """(height, width) map in [0, 1] at the image's own size: where the model's evidence for the class lies."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if not 0 <= class_index < len(class_names):
        raise ValueError(f"class index {class_index} is outside the {len(class_names)} classes")
    picture = image if isinstance(image, Image.Image) else load_image(image)
    batch = encode_batch(detector, [picture], [list(class_names)], context_tokens=prompt.context_tokens if prompt
                         else 0)
    detector.model.eval()
    with prompt if prompt is not None else contextlib.nullcontext():
        if prompt is not None:
            prompt.eval()
        wrapper = ClassScores(detector.model, batch, level)  # after attach: full fine-tuning swaps the model in
        try:
            with torch.enable_grad(), GradCAM(model=wrapper, target_layers=[cam_layer(detector.model, level)]) as cam:
                heat = cam(input_tensor=batch.inputs["pixel_values"],
                           targets=[ClassifierOutputTarget(class_index)])[0]
        finally:
            wrapper.close()
    mask = batch.inputs.get("pixel_mask")
    if mask is not None:  # drop the padding the processor added, then map back to the original size
        rows, cols = int(mask[0].any(1).sum()), int(mask[0].any(0).sum())
        heat = heat[:rows, :cols]
    resized = Image.fromarray(np.float32(heat)).resize(picture.size, Image.BILINEAR)
    heat = np.asarray(resized, dtype=np.float32)
    peak = float(heat.max())
    return heat / peak if peak > 0 else heat


def cam_overlay(image: Image.Image, heat: np.ndarray, weight: float = 0.5) -> Image.Image:
    """The heat-map coloured (jet) over the image."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return Image.fromarray(show_cam_on_image(rgb, heat, use_rgb=True, image_weight=1 - weight))


__all__ = ["class_cam", "cam_overlay", "describe_cam"]
