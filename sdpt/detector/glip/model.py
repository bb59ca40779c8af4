"""GLIP's detector (`GeneralizedVLRCNN` with an RPN-only VLDyHead): the configuration and the assembled module,
under the official checkpoint's top-level names `backbone`, `language_backbone` and `rpn.{head, anchor_generator}`.

`GlipConfig.glip_t()` is GLIP-T (C) (configs/pretrain/glip_Swin_T_O365_GoldG.yaml): Swin-T + FPN, BERT base,
6 x [fusion, BERT layer, DyConv], 2048-wide fusion attention with 8 heads, anchors 64..1024 at strides 8..128.
`GlipConfig.tiny()` keeps the topology at test widths. Images enter as GLIP feeds them: BGR in 0..255 minus
`pixel_mean`, over `pixel_std`, padded to a multiple of `size_divisibility`.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from sdpt.detector.glip.anchors import AnchorGenerator
from sdpt.detector.glip.backbone import GlipBackbone, GlipBackboneConfig
from sdpt.detector.glip.head import VLDyHead
from sdpt.detector.glip.head_outputs import HeadPredictions
from sdpt.detector.glip.language import TextEncoder

BERT_BASE = {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2}


@dataclass
class GlipConfig:
    """Everything that fixes the module layout, plus the input conventions; JSON round-trip via to_dict/from_dict."""

    backbone: dict = field(default_factory=lambda: asdict(GlipBackboneConfig()))
    bert: dict = field(default_factory=lambda: dict(BERT_BASE))  # transformers BertConfig fields
    tokenizer: str = "bert-base-uncased"
    text_layers_averaged: int = 1  # MODEL.LANGUAGE_BACKBONE.N_LAYERS
    head_layers: int = 6  # MODEL.DYHEAD.NUM_CONVS
    fusion_embed_dim: int = 2048
    fusion_heads: int = 8
    num_classes: int = 81  # MODEL.DYHEAD.NUM_CLASSES: the unused cls_logits have num_classes - 1 outputs
    anchor_sizes: tuple[int, ...] = (64, 128, 256, 512, 1024)
    anchor_strides: tuple[int, ...] = (8, 16, 32, 64, 128)
    max_query_len: int = 256  # MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN; prompts are padded to it (PAD_MAX)
    pixel_mean: tuple[float, ...] = (103.530, 116.280, 123.675)  # BGR, 0..255
    pixel_std: tuple[float, ...] = (57.375, 57.120, 58.395)
    size_divisibility: int = 32
    min_size: int = 800
    max_size: int = 1333
    use_checkpoint: bool = False  # recompute fusion blocks in backward (GLIP trains with it)

    @classmethod
    def glip_t(cls) -> "GlipConfig":
        return cls()

    @classmethod
    def tiny(cls, vocab_size: int = 1030) -> "GlipConfig":
        """GLIP's topology at test widths (2 head layers, a 2-layer BERT of width 32); the vocabulary holds BERT's
        special ids (the largest, '?', is 1029), as sdpt.detector.prompts.tiny_vocab does."""
        backbone = asdict(GlipBackboneConfig(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4),
                                             window_size=4, fpn_channels=32, drop_path_rate=0.0,
                                             drop_block_prob=0.0))
        bert = {"vocab_size": vocab_size, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 64, "max_position_embeddings": 64, "type_vocab_size": 2}
        return cls(backbone=backbone, bert=bert, head_layers=2, fusion_embed_dim=64, fusion_heads=4,
                   max_query_len=64, min_size=128, max_size=192)

    def bert_config(self):
        from transformers import BertConfig

        config = BertConfig(**self.bert)
        config._attn_implementation = "eager"  # the same numbers on every machine, masks as GLIP applies them
        return config

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "GlipConfig":
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        for key in ("anchor_sizes", "anchor_strides", "pixel_mean", "pixel_std"):
            if key in known:
                known[key] = tuple(known[key])
        if "backbone" in known:
            known["backbone"] = {k: tuple(v) if isinstance(v, list) else v for k, v in known["backbone"].items()}
        return cls(**known)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path) -> "GlipConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class GlipOutputs:
    """One forward: the head's predictions and the anchors they refer to (one (A, 4) xyxy tensor per level)."""

    predictions: HeadPredictions
    anchors: list[torch.Tensor]

    @property
    def flat_anchors(self) -> torch.Tensor:
        return torch.cat(self.anchors, dim=0)


class RegionProposal(nn.Module):
    """`rpn`: the head and the anchor generator, as the official VLDyHeadModule names them."""

    def __init__(self, config: GlipConfig):
        super().__init__()
        bert = config.bert_config()
        channels = config.backbone["fpn_channels"]
        self.head = VLDyHead(bert, config.head_layers, channels, config.fusion_embed_dim, config.fusion_heads,
                             num_levels=len(config.anchor_strides), num_classes=config.num_classes,
                             use_checkpoint=config.use_checkpoint)
        self.anchor_generator = AnchorGenerator(sizes=config.anchor_sizes, strides=config.anchor_strides)


class GlipModel(nn.Module):
    """images (B, 3, H, W) normalised and padded, token ids and mask (B, T) -> GlipOutputs."""

    def __init__(self, config: GlipConfig):
        super().__init__()
        self.config = config
        self.backbone = GlipBackbone(**config.backbone)
        self.language_backbone = TextEncoder(config.bert_config(), config.text_layers_averaged)
        self.rpn = RegionProposal(config)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> GlipOutputs:
        language = self.language_backbone(input_ids, attention_mask)
        features = self.backbone(pixel_values)
        predictions = self.rpn.head(list(features), language)
        anchors = self.rpn.anchor_generator(list(features))
        return GlipOutputs(predictions, anchors)
