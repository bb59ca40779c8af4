"""Loading a Grounding DINO-family detector (hub id, local directory or `tiny-random`) into a frozen `Detector`."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from sdpt.detector.grounding_dino.detector import Detector, set_fusion_scale
from sdpt.detector.host import ModelLoadError
from sdpt.detector.prompts import tiny_vocab

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "IDEA-Research/grounding-dino-tiny"
TINY_RANDOM = "tiny-random"
FULL_SIZE_RANDOM = "full-size-random"  # grounding-dino-tiny's architecture, random weights: for timing offline


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
