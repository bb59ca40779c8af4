"""Activation checkpointing of the encoder and decoder layers during tuning.

Prompt tuning back-propagates through every encoder layer from the first prompted one and through the decoder,
so their activations dominate its memory (at 800 px the encoder holds ~17k image tokens per level stack). Inside
`activation_checkpointing(...)` each of those layers keeps only its inputs and recomputes its forward pass during
backward: less memory for some extra compute. The frozen model runs in eval mode (no dropout), so the recomputed
pass equals the first one and gradients are unchanged.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch.utils.checkpoint import checkpoint


def _checkpointed(forward):
    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run


@contextmanager
def activation_checkpointing(detector, first_encoder_layer: int = 0):
    """Checkpoint encoder layers `first_encoder_layer`... and every decoder layer while inside."""
    inner = detector.model.model
    layers = list(inner.encoder.layers)[first_encoder_layer:] + list(inner.decoder.layers)
    for layer in layers:
        layer.forward = _checkpointed(layer.forward)  # an instance attribute shadows the class's forward
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward
