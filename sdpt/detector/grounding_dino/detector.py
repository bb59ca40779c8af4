"""Grounding DINO as a host (`sdpt.detector.host.Host`): the frozen model with its processor, and the members the
library calls; loading it lives in `loading.py`."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
from torch import nn


def set_fusion_scale(model, value: float) -> None:
    """Set every fusion layer's layer-scale (the per-channel factor on its attention update) to `value`.

    transformers starts them at 1e-4; pre-training at lr 1e-4 grew them only to ~0.01, so the fusion layers of that
    model change the features they fuse by 1-2% (`python -m benchmarks.fusion_share`), which also caps what prompts
    placed in the fusion attention can do. A larger start makes the detector rely on fusion, as real checkpoints do.
    """
    if not value > 0:
        raise ValueError(f"the fusion layer-scale must be positive, got {value}")
    with torch.no_grad():
        for layer in model.model.encoder.layers:
            layer.fusion_layer.vision_param.fill_(value)
            layer.fusion_layer.text_param.fill_(value)


@dataclass
class Detector:
    """A frozen Grounding DINO in eval mode, its processor, where it came from, and the device it runs on.

    Implements the `sdpt.detector.host.Host` interface: everything the library needs from the model goes through
    the members below, which hand the work to this package's modules.
    """

    model: nn.Module
    processor: object
    model_id: str
    host = "grounding_dino"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def config(self):
        return self.model.config

    @property
    def fusion_blocks(self) -> list[nn.Module]:
        """Each encoder layer's fusion block (`GroundingDinoFusionLayer`: layer norms, attention, layer-scale)."""
        return [layer.fusion_layer for layer in self.model.model.encoder.layers]

    @property
    def fusion_layers(self) -> list[nn.Module]:
        """The bi-directional cross-attention module of each encoder layer (`GroundingDinoBiMultiHeadAttention`)."""
        return [layer.fusion_layer.attn for layer in self.model.model.encoder.layers]

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def image_processor(self):
        return self.processor.image_processor

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def fingerprint(self) -> str:
        """SHA-256 of the fusion projections (the weights SDPT's pseudo-inverses are taken from) and the config shape.

        Two detectors with equal fingerprints give identical inverse projections, so a prompt moves between them.
        """
        digest = hashlib.sha256()
        cfg = self.config
        digest.update(f"{cfg.model_type}:{cfg.d_model}:{cfg.encoder_layers}:{cfg.encoder_ffn_dim}".encode())
        for attn in self.fusion_layers:
            for linear in (attn.vision_proj, attn.text_proj):
                for tensor in (linear.weight, linear.bias):
                    digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def freeze(self) -> "Detector":
        """Freeze every weight and switch to eval mode (drop-path and dropout off), as prompt tuning needs."""
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.model.eval()
        return self

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        self.model.save_pretrained(directory, safe_serialization=True)
        self.processor.save_pretrained(directory)

    # --- the Host interface (sdpt/detector/host.py) ---
    @property
    def max_text_len(self) -> int:
        return self.config.max_text_len

    @property
    def text_width(self) -> int:
        return self.config.text_config.hidden_size

    def class_chunks(self, class_names: list[str], context_tokens: int = 0) -> list[list[int]]:
        from sdpt.detector.prompts import split_class_names

        return split_class_names(self.tokenizer, class_names, self.max_text_len, context_tokens)

    def encode(self, images, class_names: list[list[str]], targets=None, context_tokens: int = 0):
        from sdpt.detector.grounding_dino.inputs import encode_batch

        return encode_batch(self, images, class_names, targets, context_tokens=context_tokens)

    def forward(self, batch):
        return self.model(**batch.inputs)

    def loss(self, outputs, batch, silent_tokens=None, teacher=None, distill_weight: float = 0.0,
             aux_loss: bool = True, encoder_loss: bool = False):
        from sdpt.detector.grounding_dino.loss import detection_loss

        return detection_loss(self, outputs, batch, aux_loss=aux_loss, encoder_loss=encoder_loss,
                              silent_tokens=silent_tokens, teacher=teacher, distill_weight=distill_weight)

    def decode(self, outputs, batch, threshold: float = 0.0, top_k: int = 100):
        from sdpt.detector.grounding_dino.postprocess import decode_detections

        return decode_detections(outputs.logits, outputs.pred_boxes, batch, threshold=threshold, top_k=top_k)

    def teacher_targets(self, outputs, tokens: torch.Tensor):
        from sdpt.detector.grounding_dino.teacher import teacher_targets

        return teacher_targets(self, outputs, tokens)

    def prefix_cache(self, first_prompted_layer: int, cache_text: bool = True, max_entries: int = 256):
        from sdpt.detector.grounding_dino.prefix_cache import PrefixCache

        return PrefixCache(self, first_prompted_layer, cache_text=cache_text, max_entries=max_entries)

    def activation_checkpointing(self, first_prompted_layer: int = 0):
        from sdpt.detector.grounding_dino.checkpointing import activation_checkpointing

        return activation_checkpointing(self, first_prompted_layer)

    def prompt_injector(self, layer_indices: list[int], prompts_for):
        from sdpt.detector.grounding_dino.fusion import FusionPromptInjector

        return FusionPromptInjector(self, layer_indices, prompts_for)

    def text_context_injector(self, vectors):
        from sdpt.detector.text_context import TextContextInjector

        return TextContextInjector(lambda: self.model.model.text_backbone.embeddings.word_embeddings, vectors)

    def replace_fusion_blocks(self, blocks: list[nn.Module]) -> list[nn.Module]:
        layers = self.model.model.encoder.layers
        originals = [layer.fusion_layer for layer in layers]
        for layer, block in zip(layers, blocks):
            layer.fusion_layer = block
        return originals

    def fusion_block_parameters(self, block: nn.Module) -> list[nn.Parameter]:
        return [*block.attn.parameters(), block.vision_param, block.text_param]

    def set_fusion_scale(self, value: float) -> None:
        set_fusion_scale(self.model, value)

    def box_token_features(self, images, boxes, class_names: list[str], layers: list[int]) -> dict:
        from sdpt.detector.grounding_dino.box_features import box_token_features

        return box_token_features(self, images, boxes, class_names, layers)

    def cam_target(self, batch, level: int | None = None):
        from sdpt.detector.grounding_dino.cam_target import CAM_LEVEL, ClassScores, cam_layer
        from sdpt.detector.host import CamTarget

        level = CAM_LEVEL if level is None else level
        mask = batch.inputs["pixel_mask"][0]
        return CamTarget(ClassScores(self.model, batch, level), cam_layer(self.model, level),
                         batch.inputs["pixel_values"], (int(mask.any(1).sum()), int(mask.any(0).sum())))

    def cam_layer_name(self) -> str:
        from sdpt.detector.grounding_dino.cam_target import cam_layer_name

        return f"{cam_layer_name()} (stride-8 image features entering the encoder)"
