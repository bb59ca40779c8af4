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
from sdpt.methods import PromptMethod


def describe_cam(detector=None) -> str:
    where = detector.cam_layer_name() if detector is not None else "the finest image feature map entering the fusion"
    return f"Grad-CAM on {where}, target = the class's best score; one forward + backward pass per map"


def class_cam(detector, image: Image.Image | str | Path, class_names: Sequence[str], class_index: int,
              prompt: PromptMethod | None = None, level: int | None = None) -> np.ndarray:
    """(height, width) map in [0, 1] at the image's own size: where the model's evidence for the class lies."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if not 0 <= class_index < len(class_names):
        raise ValueError(f"class index {class_index} is outside the {len(class_names)} classes")
    picture = image if isinstance(image, Image.Image) else load_image(image)
    batch = detector.encode([picture], [list(class_names)], context_tokens=prompt.context_tokens if prompt else 0)
    detector.model.eval()
    with prompt if prompt is not None else contextlib.nullcontext():
        if prompt is not None:
            prompt.eval()
        target = detector.cam_target(batch, level)  # after attach: full fine-tuning swaps the model in
        try:
            with torch.enable_grad(), GradCAM(model=target.model, target_layers=[target.layer]) as cam:
                heat = cam(input_tensor=target.pixels, targets=[ClassifierOutputTarget(class_index)])[0]
        finally:
            target.model.close()
    rows, cols = target.valid  # drop the padding the host added, then map back to the original size
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
