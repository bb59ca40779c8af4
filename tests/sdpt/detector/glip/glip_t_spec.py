"""The official GLIP-T (C) checkpoint's keys and shapes, built from the architecture's constants alone (written apart
from the model code, so that a test comparing the two can fail): Swin-T + FPN, BERT base without pooler, and the
VLDyHead with 6 x [fusion, BERT layer, DyConv] and its ATSS output layers. Keys carry no `module.` prefix."""
from __future__ import annotations

import math

# configs/pretrain/glip_Swin_T_O365_GoldG.yaml and the modules it names
SWIN_DIM, SWIN_DEPTHS, SWIN_HEADS, WINDOW, PATCH, MLP_RATIO = 96, (2, 2, 6, 2), (3, 6, 12, 24), 7, 4, 4
FPN_CHANNELS, FPN_FROM_STAGES = 256, (1, 2, 3)  # C3-C5 feed the FPN; P6, P7 come from P5
BERT_DIM, BERT_LAYERS, BERT_FFN, BERT_VOCAB, BERT_POSITIONS, BERT_TYPES = 768, 12, 3072, 30522, 512, 2
FUSION_LAYERS, FUSION_EMBED = 6, 2048
LEVELS, NUM_CLASSES, ANCHORS_PER_LOCATION = 5, 81, 1
DYRELU_REDUCTION, DYRELU_OUTPUTS = 4, 4  # DyReLU's squeeze (256 -> 64) and its 4 coefficients per channel
# buffers: recomputed from the constants, not learnt
BUFFER_SUFFIXES = ("relative_position_index", "cell_anchors")


def _linear(prefix: str, out_dim: int, in_dim: int, bias: bool = True) -> dict:
    entries = {f"{prefix}.weight": (out_dim, in_dim)}
    if bias:
        entries[f"{prefix}.bias"] = (out_dim,)
    return entries


def _norm(prefix: str, dim: int) -> dict:
    return {f"{prefix}.weight": (dim,), f"{prefix}.bias": (dim,)}


def _conv(prefix: str, out_ch: int, in_ch: int, k: int, bias: bool = True) -> dict:
    entries = {f"{prefix}.weight": (out_ch, in_ch, k, k)}
    if bias:
        entries[f"{prefix}.bias"] = (out_ch,)
    return entries


def swin() -> dict:
    spec = {**_conv("backbone.body.patch_embed.proj", SWIN_DIM, 3, PATCH), **_norm("backbone.body.patch_embed.norm",
                                                                                 SWIN_DIM)}
    for stage, (depth, heads) in enumerate(zip(SWIN_DEPTHS, SWIN_HEADS)):
        dim = SWIN_DIM * 2 ** stage
        for block in range(depth):
            p = f"backbone.body.layers.{stage}.blocks.{block}"
            spec.update(_norm(f"{p}.norm1", dim))
            spec[f"{p}.attn.relative_position_bias_table"] = ((2 * WINDOW - 1) ** 2, heads)
            spec[f"{p}.attn.relative_position_index"] = (WINDOW * WINDOW, WINDOW * WINDOW)
            spec.update(_linear(f"{p}.attn.qkv", 3 * dim, dim))
            spec.update(_linear(f"{p}.attn.proj", dim, dim))
            spec.update(_norm(f"{p}.norm2", dim))
            spec.update(_linear(f"{p}.mlp.fc1", MLP_RATIO * dim, dim))
            spec.update(_linear(f"{p}.mlp.fc2", dim, MLP_RATIO * dim))
        if stage < len(SWIN_DEPTHS) - 1:  # patch merging: 2x2 neighbours concatenated, then halved
            spec.update(_linear(f"backbone.body.layers.{stage}.downsample.reduction", 2 * dim, 4 * dim, bias=False))
            spec.update(_norm(f"backbone.body.layers.{stage}.downsample.norm", 4 * dim))
    for stage in FPN_FROM_STAGES:
        spec.update(_norm(f"backbone.body.norm{stage}", SWIN_DIM * 2 ** stage))
    return spec


def fpn() -> dict:
    spec = {}
    for k, stage in enumerate(FPN_FROM_STAGES, start=2):
        spec.update(_conv(f"backbone.fpn.fpn_inner{k}", FPN_CHANNELS, SWIN_DIM * 2 ** stage, 1))
        spec.update(_conv(f"backbone.fpn.fpn_layer{k}", FPN_CHANNELS, FPN_CHANNELS, 3))
    for level in ("p6", "p7"):
        spec.update(_conv(f"backbone.fpn.top_blocks.{level}", FPN_CHANNELS, FPN_CHANNELS, 3))
    return spec


def bert_layer(prefix: str) -> dict:
    spec = {}
    for name in ("query", "key", "value"):
        spec.update(_linear(f"{prefix}.attention.self.{name}", BERT_DIM, BERT_DIM))
    spec.update(_linear(f"{prefix}.attention.output.dense", BERT_DIM, BERT_DIM))
    spec.update(_norm(f"{prefix}.attention.output.LayerNorm", BERT_DIM))
    spec.update(_linear(f"{prefix}.intermediate.dense", BERT_FFN, BERT_DIM))
    spec.update(_linear(f"{prefix}.output.dense", BERT_DIM, BERT_FFN))
    spec.update(_norm(f"{prefix}.output.LayerNorm", BERT_DIM))
    return spec


def bert() -> dict:
    p = "language_backbone.body.model"
    spec = {f"{p}.embeddings.word_embeddings.weight": (BERT_VOCAB, BERT_DIM),
            f"{p}.embeddings.position_embeddings.weight": (BERT_POSITIONS, BERT_DIM),
            f"{p}.embeddings.token_type_embeddings.weight": (BERT_TYPES, BERT_DIM),
            **_norm(f"{p}.embeddings.LayerNorm", BERT_DIM)}
    for layer in range(BERT_LAYERS):
        spec.update(bert_layer(f"{p}.encoder.layer.{layer}"))
    return spec


def fusion(prefix: str) -> dict:
    spec = {f"{prefix}.gamma_v": (FPN_CHANNELS,), f"{prefix}.gamma_l": (BERT_DIM,),
            **_norm(f"{prefix}.layer_norm_v", FPN_CHANNELS), **_norm(f"{prefix}.layer_norm_l", BERT_DIM)}
    for name, in_dim in (("v_proj", FPN_CHANNELS), ("l_proj", BERT_DIM), ("values_v_proj", FPN_CHANNELS),
                         ("values_l_proj", BERT_DIM)):
        spec.update(_linear(f"{prefix}.attn.{name}", FUSION_EMBED, in_dim))
    spec.update(_linear(f"{prefix}.attn.out_v_proj", FPN_CHANNELS, FUSION_EMBED))
    spec.update(_linear(f"{prefix}.attn.out_l_proj", BERT_DIM, FUSION_EMBED))
    return spec


def dyconv(prefix: str) -> dict:
    spec = {}
    for k in range(3):  # the level itself, the larger level (stride 2) and the smaller one (upsampled)
        spec.update(_conv(f"{prefix}.DyConv.{k}.conv", FPN_CHANNELS, FPN_CHANNELS, 3))
        spec.update(_norm(f"{prefix}.DyConv.{k}.bn", FPN_CHANNELS))
    spec.update(_conv(f"{prefix}.AttnConv.1", 1, FPN_CHANNELS, 1))
    squeezed = FPN_CHANNELS // DYRELU_REDUCTION
    spec.update(_linear(f"{prefix}.relu.fc.0", squeezed, FPN_CHANNELS))
    spec.update(_linear(f"{prefix}.relu.fc.2", DYRELU_OUTPUTS * FPN_CHANNELS, squeezed))
    spec.update(_conv(f"{prefix}.offset", 3 * 3 * 3, FPN_CHANNELS, 3))  # 2 offsets + 1 mask per 3x3 tap
    return spec


def head() -> dict:
    spec = {}
    for layer in range(FUSION_LAYERS):
        spec.update(fusion(f"rpn.head.dyhead_tower.{3 * layer}.b_attn"))
        spec.update(bert_layer(f"rpn.head.dyhead_tower.{3 * layer + 1}"))
        spec.update(dyconv(f"rpn.head.dyhead_tower.{3 * layer + 2}"))
    spec.update({"rpn.head.log_scale": (1,), "rpn.head.bias_lang": (BERT_DIM,), "rpn.head.bias0": (1,)})
    spec.update(_conv("rpn.head.cls_logits", ANCHORS_PER_LOCATION * (NUM_CLASSES - 1), FPN_CHANNELS, 1))
    spec.update(_conv("rpn.head.bbox_pred", ANCHORS_PER_LOCATION * 4, FPN_CHANNELS, 1))
    spec.update(_conv("rpn.head.centerness", ANCHORS_PER_LOCATION, FPN_CHANNELS, 1))
    spec.update(_linear("rpn.head.dot_product_projection_text", FPN_CHANNELS, BERT_DIM))
    for level in range(LEVELS):
        spec[f"rpn.head.scales.{level}.scale"] = (1,)
        spec[f"rpn.anchor_generator.cell_anchors.{level}"] = (ANCHORS_PER_LOCATION, 4)
    return spec


def glip_t_spec() -> dict[str, tuple[int, ...]]:
    """{key: shape} of every entry of GLIP-T (C)'s checkpoint (parameters and buffers)."""
    return {**swin(), **fpn(), **bert(), **head()}


def parameter_count(spec: dict[str, tuple[int, ...]]) -> int:
    return sum(math.prod(shape) for key, shape in spec.items() if not key.split(".")[-1].startswith(BUFFER_SUFFIXES)
               and not any(part in BUFFER_SUFFIXES for part in key.split(".")))
