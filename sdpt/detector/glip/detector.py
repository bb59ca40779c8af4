"""A frozen GLIP with its tokenizer as a host (`sdpt.detector.host.Host`): batches, forward, loss, detections, and
where prompts act, for the library's methods, training, inference and CAM.

Many classes are split over several captions (each at most `max_query_len` tokens), as for every host. The prefix
cache replays both backbones (every fusion layer lies after them).
"""
from __future__ import annotations

import contextlib
import hashlib

import torch
from torch import nn

from sdpt.detector.detections import Detections
from sdpt.detector.glip.atss_loss import glip_loss
from sdpt.detector.glip.inputs import GlipBatch, encode
from sdpt.detector.glip.model import GlipConfig, GlipModel
from sdpt.detector.glip.postprocess import INFERENCE_TH, glip_detections
from sdpt.detector.prompts import split_class_names


class GlipDetector:
    host = "glip"

    def __init__(self, model: GlipModel, tokenizer, model_id: str = "glip"):
        self.model, self.tokenizer, self.model_id = model.eval(), tokenizer, model_id
        self.freeze()

    @property
    def config(self) -> GlipConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_text_len(self) -> int:
        return self.config.max_query_len

    @property
    def text_width(self) -> int:
        return self.model.language_backbone.dim

    @property
    def fusion_blocks(self) -> list[nn.Module]:
        """Each fusion layer's `BiAttentionBlock` (layer norms, attention, layer-scales gamma_v / gamma_l)."""
        return [fuse.b_attn for fuse in self.model.rpn.head.fusion_layers]

    @property
    def fusion_layers(self) -> list[nn.Module]:
        return [block.attn for block in self.fusion_blocks]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def fingerprint(self) -> str:
        """SHA-256 of the fusion projections SDPT inverts and the fusion shape (as Grounding DINO's host does)."""
        digest = hashlib.sha256()
        first = self.fusion_layers[0]
        digest.update(f"glip:{first.v_dim}:{first.l_dim}:{first.embed_dim}:{len(self.fusion_layers)}".encode())
        for attn in self.fusion_layers:
            for linear in (attn.v_proj, attn.l_proj):
                for tensor in (linear.weight, linear.bias):
                    digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def freeze(self) -> "GlipDetector":
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.model.eval()
        return self

    def save_pretrained(self, directory) -> None:
        from sdpt.detector.glip.checkpoint import save_pretrained

        save_pretrained(self.model, directory)

    # --- batches, forward, loss, detections ---
    def class_chunks(self, class_names: list[str], context_tokens: int = 0) -> list[list[int]]:
        return split_class_names(self.tokenizer, class_names, self.max_text_len, context_tokens)

    def encode(self, images, class_names: list[list[str]], targets=None, context_tokens: int = 0) -> GlipBatch:
        return encode(images, class_names, self.tokenizer, self.config, targets, context_tokens).to(self.device)

    def forward(self, batch: GlipBatch):
        return self.model(batch.pixel_values, batch.input_ids, batch.attention_mask)

    def loss(self, outputs, batch: GlipBatch, silent_tokens=None, teacher=None, distill_weight: float = 0.0,
             aux_loss: bool = True, encoder_loss: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
        """GLIP's loss; `silent_tokens` (B, T) leave the token focal loss, the cached `teacher` holds them.
        (`aux_loss` and `encoder_loss` are Grounding DINO's options; GLIP's head has one output.)"""
        p = outputs.predictions
        text_mask = batch.attention_mask.bool()
        if silent_tokens is not None:
            text_mask = text_mask & ~silent_tokens[:, : text_mask.shape[1]]
        total, parts = glip_loss(p.flat_box_regression(), p.flat_centerness(), p.dot_product_logits,
                                 outputs.flat_anchors, p.level_counts, text_mask, batch.boxes, batch.token_maps)
        if teacher is not None and distill_weight > 0:
            from sdpt.detector.glip.teacher import distillation_loss

            parts = {**parts, "distill": distillation_loss(outputs, teacher)}
            total = total + distill_weight * parts["distill"]
        return total, {k: float(v.detach()) for k, v in parts.items()}

    def batch_loss(self, batch: GlipBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward and loss of a labelled batch in one call (pre-training)."""
        out = self.forward(batch)
        p = out.predictions
        return glip_loss(p.flat_box_regression(), p.flat_centerness(), p.dot_product_logits, out.flat_anchors,
                         p.level_counts, batch.attention_mask, batch.boxes, batch.token_maps)

    def decode(self, outputs, batch: GlipBatch, threshold: float = 0.0, top_k: int = 100) -> list[Detections]:
        """Detections in the original images' pixels, class indices into each image's class list."""
        p = outputs.predictions
        per_image = glip_detections(p.flat_box_regression(), p.flat_centerness(), p.dot_product_logits,
                                    outputs.flat_anchors, p.level_counts, batch.class_maps, batch.resized_sizes,
                                    batch.class_names, pre_nms_threshold=min(threshold, INFERENCE_TH),
                                    detections_per_image=top_k)
        found = []
        for detections, scale in zip(per_image, batch.scales):
            keep = detections.scores >= threshold
            found.append(Detections(detections.boxes[keep] / scale, detections.classes[keep], detections.scores[keep],
                                    detections.class_names))
        return found

    def teacher_targets(self, outputs, tokens: torch.Tensor):
        from sdpt.detector.glip.teacher import teacher_targets

        return teacher_targets(outputs, tokens)

    # --- where prompts act ---
    def prefix_cache(self, first_prompted_layer: int, cache_text: bool = True, max_entries: int = 256):
        from sdpt.detector.glip.prefix_cache import GlipPrefixCache

        return GlipPrefixCache(self, cache_text=cache_text, max_entries=max_entries)

    def activation_checkpointing(self, first_prompted_layer: int = 0):
        return contextlib.nullcontext()

    def prompt_injector(self, layer_indices: list[int], prompts_for):
        from sdpt.detector.glip.prompting import GlipPromptInjector

        return GlipPromptInjector(self, layer_indices, prompts_for)

    def text_context_injector(self, vectors):
        from sdpt.detector.text_context import TextContextInjector

        return TextContextInjector(lambda: self.model.language_backbone.body.model.embeddings.word_embeddings, vectors)

    def replace_fusion_blocks(self, blocks: list[nn.Module]) -> list[nn.Module]:
        fuses = self.model.rpn.head.fusion_layers
        originals = [fuse.b_attn for fuse in fuses]
        for fuse, block in zip(fuses, blocks):
            fuse.b_attn = block
        return originals

    def fusion_block_parameters(self, block: nn.Module) -> list[nn.Parameter]:
        return [*block.attn.parameters(), block.gamma_v, block.gamma_l]

    def set_fusion_scale(self, value: float) -> None:
        """Fill every fusion block's layer-scales (gamma_v, gamma_l; GLIP starts them at 1 / layers) with `value`."""
        if not value > 0:
            raise ValueError(f"the fusion layer-scale must be positive, got {value}")
        with torch.no_grad():
            for block in self.fusion_blocks:
                block.gamma_v.fill_(value)
                block.gamma_l.fill_(value)

    def box_token_features(self, images, boxes, class_names: list[str], layers: list[int]) -> dict:
        from sdpt.detector.glip.box_features import box_token_features

        return box_token_features(self, images, boxes, class_names, layers)

    def cam_target(self, batch: GlipBatch, level: int | None = None):
        from sdpt.detector.glip.cam_target import cam_target

        return cam_target(self, batch, level)

    def cam_layer_name(self) -> str:
        from sdpt.detector.glip.cam_target import cam_layer_name

        return f"{cam_layer_name()} (the finest FPN map entering the dynamic head)"
