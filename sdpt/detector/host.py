"""What every host detector provides: the one interface that methods, training, inference, CAM and prompt files see.

A host is a frozen fusion detector (Grounding DINO in `sdpt.detector.grounding_dino`, GLIP in `sdpt.detector.glip`)
wrapped in an object with the members of `Host` below; nothing outside `sdpt/detector/` reaches past them into the
model's modules. This follows peft's per-model mapping: one place per model family says where the pieces a method
needs live, and the methods are written once.

What a host must say:
- its fusion layers: the bi-directional attention modules whose frozen projections SDPT inverts (under the names
  of `sdpt.detector.fusion_prompts`), and an injector that makes `FusionPrompts` act in them;
- where the text context enters (learned vectors in place of `[MASK]` placeholders in the text backbone's input);
- how images and class prompts become a batch, the forward pass, the loss (with silent tokens and the cached
  zero-shot teacher), the post-processing into `Detections`;
- the prefix-cache boundary (or None where it has no cache) and activation checkpointing;
- the CAM target: the feature map to explain and a model from pixels to per-class scores.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import torch
from torch import nn

from sdpt.detector.detections import Detections
from sdpt.detector.fusion_prompts import FusionPrompts

HOSTS = ("grounding_dino", "glip")


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message says what to do instead."""


@dataclass
class CamTarget:
    """What Grad-CAM needs for one encoded image: `model` maps the pixels to (1, classes) scores (call its
    `close()` afterwards), `layer` is the feature map explained, `pixels` the model's input, `valid` the (rows,
    columns) of that input that hold the image (the rest is padding)."""

    model: nn.Module
    layer: nn.Module
    pixels: torch.Tensor
    valid: tuple[int, int]


@runtime_checkable
class Host(Protocol):
    host: str  # one of HOSTS; recorded in prompt files
    model: nn.Module  # the whole frozen detector (full fine-tuning swaps a trained copy in and out)
    model_id: str
    tokenizer: object

    @property
    def device(self) -> torch.device: ...

    @property
    def max_text_len(self) -> int:
        """Tokens one prompt may hold ([CLS] and [SEP] included)."""

    @property
    def text_width(self) -> int:
        """Width of the text backbone's token embeddings (where learned text context lives)."""

    @property
    def fusion_layers(self) -> list[nn.Module]:
        """Each fusion layer's bi-directional attention, exposing the names listed in `fusion_prompts`."""

    @property
    def fusion_blocks(self) -> list[nn.Module]:
        """Each fusion layer's whole block (layer norms, attention, layer-scale), for fusion fine-tuning."""

    def parameter_count(self) -> int: ...

    def fingerprint(self) -> str:
        """A digest of the fusion projections and shapes: equal fingerprints give equal inverse projections."""

    def freeze(self) -> "Host": ...

    def class_chunks(self, class_names: list[str], context_tokens: int = 0) -> list[list[int]]:
        """Class indices packed, in order, into as few prompts as fit `max_text_len`."""

    def encode(self, images, class_names: list[list[str]], targets=None, context_tokens: int = 0):
        """A batch on the host's device: `.inputs` (a dict of tensors, the cache key), `.phrase_maps` (per image
        (classes, tokens)), `.class_names`, and labels when `targets` (pixel xyxy `boxes`, `classes`) are given."""

    def forward(self, batch): ...

    def loss(self, outputs, batch, silent_tokens=None, teacher=None, distill_weight: float = 0.0,
             aux_loss: bool = True, encoder_loss: bool = False) -> tuple[torch.Tensor, dict[str, float]]: ...

    def decode(self, outputs, batch, threshold: float = 0.0, top_k: int = 100) -> list[Detections]:
        """Per-image detections in the original images' pixels, class indices into each image's class list."""

    def teacher_targets(self, outputs, tokens: torch.Tensor):
        """The frozen model's `outputs` at the held `tokens` (B, T), cached for the whole run."""

    def prefix_cache(self, first_prompted_layer: int, cache_text: bool = True, max_entries: int = 256):
        """A cache whose `replay(batch.inputs)` reuses the prompt-independent prefix, or None."""

    def activation_checkpointing(self, first_prompted_layer: int = 0) -> AbstractContextManager: ...

    def prompt_injector(self, layer_indices: list[int],
                        prompts_for: Callable[..., FusionPrompts | None]):
        """An object with attach()/detach() that makes the prompts act in those fusion layers."""

    def text_context_injector(self, vectors: Callable[[], torch.Tensor]):
        """An object with attach()/detach() that puts `vectors()` (M, text_width) in place of context placeholders."""

    def replace_fusion_blocks(self, blocks: list[nn.Module]) -> list[nn.Module]:
        """Put `blocks` in the fusion layers' places; returns the blocks that were there."""

    def fusion_block_parameters(self, block: nn.Module) -> list[nn.Parameter]:
        """What fusion fine-tuning trains in one block: the attention and the layer-scales, not the layer norms."""

    def set_fusion_scale(self, value: float) -> None:
        """Set every fusion layer's layer-scales (the per-channel factors on its attention updates) to `value` > 0,
        which sizes how much fusion changes the features it fuses (`python -m benchmarks.fusion_share`)."""

    def box_token_features(self, images, boxes, class_names: list[str], layers: list[int]) -> dict:
        """Per prompted layer, the mean attention-space features of image tokens inside each box."""

    def cam_target(self, batch, level: int | None = None) -> CamTarget:
        """Grad-CAM's model, layer and input for the first image of an encoded `batch`."""

    def cam_layer_name(self) -> str: ...


def check_host(detector) -> None:
    """Raise TypeError naming what `detector` lacks of the interface."""
    missing = [name for name in Host.__protocol_attrs__ if not hasattr(detector, name)] \
        if hasattr(Host, "__protocol_attrs__") else []
    if missing or not isinstance(detector, Host):
        raise TypeError(f"{type(detector).__name__} is not a host detector; it lacks {', '.join(missing) or 'members'}")
