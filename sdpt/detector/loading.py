"""`load_detector`: any model reference -> the host that reads it (GLIP or Grounding DINO), frozen, on a device."""
from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


def load_detector(model_id: str | None = None, device: str | torch.device | None = None):
    """GLIP for `.pth` files, hub references to them, GLIP folders and `glip-tiny-random`; Grounding DINO for
    everything else (hub ids, `save_pretrained` folders, `tiny-random`, `full-size-random`)."""
    from sdpt.detector.glip.loading import is_glip, load_glip
    from sdpt.detector.grounding_dino.loading import DEFAULT_MODEL, default_device, load_grounding_dino

    model_id = model_id or DEFAULT_MODEL
    if not is_glip(model_id):
        return load_grounding_dino(model_id, device)
    device = torch.device(device) if device is not None else default_device()
    detector = load_glip(model_id)
    detector.model.to(device)
    logger.info("loaded GLIP %s (%d parameters) on %s", model_id, detector.parameter_count(), device)
    return detector.freeze()
