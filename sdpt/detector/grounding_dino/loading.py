"""Loading a Grounding DINO-family detector (hub id, local directory or `tiny-random`) into a frozen `Detector`."""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from sdpt.detector.host import ModelLoadError
from sdpt.detector.prompts import tiny_vocab

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "IDEA-Research/grounding-dino-tiny"
TINY_RANDOM = "tiny-random"
FULL_SIZE_RANDOM = "full-size-random"  # grounding-dino-tiny's architecture, random weights: for timing offline


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


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_grounding_dino(model_id: str = DEFAULT_MODEL, device: str | torch.device | None = None) -> Detector:
    """Load `model_id` (hub id, local `save_pretrained` directory, or `tiny-random`), frozen, on `device`."""
    device = torch.device(device) if device is not None else default_device()
    if model_id == TINY_RANDOM:
        detector = build_tiny_random()
    elif model_id == FULL_SIZE_RANDOM:
        detector = build_full_size_random()
    else:
        detector = _load_pretrained(model_id)
    detector.model.to(device)
    logger.info("loaded %s (%d parameters) on %s", model_id, detector.parameter_count(), device)
    return detector.freeze()


def _load_pretrained(model_id: str) -> Detector:
    from transformers import AutoConfig, AutoProcessor, GroundingDinoForObjectDetection
    from transformers import MMGroundingDinoForObjectDetection

    local = Path(model_id).is_dir()
    if not local and (model_id.startswith((".", "/", "~")) or os.sep in model_id.strip("/").replace("/", "", 1)):
        raise ModelLoadError(f"model directory '{model_id}' does not exist")
    try:
        config = AutoConfig.from_pretrained(model_id, local_files_only=local)
    except (OSError, ValueError) as error:
        where = "local directory" if local else "Hugging Face hub"
        raise ModelLoadError(
            f"could not load model '{model_id}' from the {where} ({type(error).__name__}); if you are offline, "
            f"use --model {TINY_RANDOM} or a local directory written by save_pretrained"
        ) from error
    classes = {"grounding-dino": GroundingDinoForObjectDetection, "mm-grounding-dino": MMGroundingDinoForObjectDetection}
    if config.model_type not in classes:
        raise ModelLoadError(
            f"model '{model_id}' is a '{config.model_type}'; SDPT needs a fusion detector "
            f"({', '.join(classes)}), e.g. {DEFAULT_MODEL}"
        )
    from sdpt.detector.grounding_dino.small_model import load_packaged_text_backbone, phrase_positions, set_phrase_positions
    from sdpt.detector.grounding_dino.small_model import uses_packaged_text

    packaged_text = local and uses_packaged_text(model_id)
    if packaged_text:
        # The text backbone is not in the directory; transformers would warn that it is missing.
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
    try:
        model = classes[config.model_type].from_pretrained(model_id, local_files_only=local)
    finally:
        if packaged_text:
            hf_logging.set_verbosity(verbosity)
    if packaged_text:
        load_packaged_text_backbone(model)
        set_phrase_positions(model, phrase_positions(model_id))
    processor = AutoProcessor.from_pretrained(model_id, local_files_only=local)
    if packaged_text:
        # The project's own models were trained with the PIL image processor; keep it even where torchvision is
        # installed (transformers would then load its torchvision variant, whose resizing differs).
        from transformers import GroundingDinoImageProcessorPil

        processor.image_processor = GroundingDinoImageProcessorPil(size=dict(processor.image_processor.size))
    return Detector(model=model, processor=processor, model_id=model_id)


def tiny_config(model_type: str = "grounding-dino"):
    """A Grounding DINO (or MM-Grounding-DINO) configuration a few hundred KB in size, for tests and smoke runs."""
    from transformers import BertConfig, GroundingDinoConfig, MMGroundingDinoConfig, SwinConfig

    config_class = {"grounding-dino": GroundingDinoConfig, "mm-grounding-dino": MMGroundingDinoConfig}[model_type]

    backbone = SwinConfig(
        embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4], window_size=4, out_indices=[2, 3, 4]
    )
    text = BertConfig(
        vocab_size=max(tiny_vocab().values()) + 1, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512,
    )
    return config_class(
        backbone_config=backbone, text_config=text, d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=4, decoder_attention_heads=4,
        num_queries=30, encoder_n_points=2, decoder_n_points=2,
    )


def tiny_processor(shortest_edge: int = 128, longest_edge: int = 192):
    from transformers import BertTokenizer, GroundingDinoImageProcessorPil as GroundingDinoImageProcessor, GroundingDinoProcessor
    # The PIL image processor, named explicitly: with torchvision installed transformers would pick its torchvision
    # one, whose resizing differs, and the same seed would then give another model and other test results.

    tokenizer = BertTokenizer(vocab=tiny_vocab(), do_lower_case=True)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": shortest_edge, "longest_edge": longest_edge})
    return GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)


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


def build_tiny_random(seed: int = 0) -> Detector:
    """A small random Grounding DINO whose fusion actually acts.

    Random init leaves fusion layer-scales at 1e-4 and the last box layers at zero, so prompts could not change
    anything; here the layer-scales are 1 and the box layers small random, so prompt effects are visible.
    """
    from transformers import GroundingDinoForObjectDetection

    with torch.random.fork_rng(devices=[]):  # seeded, leaving the caller's random state alone
        torch.manual_seed(seed)
        model = GroundingDinoForObjectDetection(tiny_config())
        set_fusion_scale(model, 1.0)
        with torch.no_grad():
            for head in list(model.bbox_embed) + [model.model.encoder_output_bbox_embed]:
                nn.init.normal_(head.layers[-1].weight, std=0.05)
    return Detector(model=model, processor=tiny_processor(), model_id=TINY_RANDOM)


def build_full_size_random(seed: int = 0) -> Detector:
    """The grounding-dino-tiny architecture (GroundingDinoConfig's defaults) with random weights and the small
    offline tokenizer: the real model's size and speed, for benchmarks where no checkpoint can be downloaded."""
    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection, GroundingDinoProcessor
    from transformers import GroundingDinoImageProcessor

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GroundingDinoForObjectDetection(GroundingDinoConfig())
    processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(),
                                       tokenizer=tiny_processor().tokenizer)
    return Detector(model=model, processor=processor, model_id=FULL_SIZE_RANDOM)
