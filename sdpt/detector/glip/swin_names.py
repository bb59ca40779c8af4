"""The key mapping between GLIP's Swin (`swin.py`) and transformers' `SwinBackbone`, both ways.

Used to test the Swin's numerics against an independent implementation and to import transformers' Swin weights:
GLIP fuses q, k and v into one `qkv` projection and names its stage-output norms `norm{i}`; transformers splits the
projection, names the norms `hidden_states_norms.stage{i+1}` and keeps no `relative_position_index` in its state
dict.
"""
from __future__ import annotations

import re

import torch

from sdpt.detector.glip.swin import relative_position_index

# (ours, transformers) key prefixes; {layer} and {block} stand for stage and block numbers, equal on both sides
_RENAMED_PREFIXES = (
    ("patch_embed.proj.", "swin.embeddings.patch_embeddings.projection."),
    ("patch_embed.norm.", "swin.embeddings.norm."),
    ("layers.{layer}.blocks.{block}.norm1.", "swin.encoder.layers.{layer}.blocks.{block}.layernorm_before."),
    ("layers.{layer}.blocks.{block}.norm2.", "swin.encoder.layers.{layer}.blocks.{block}.layernorm_after."),
    ("layers.{layer}.blocks.{block}.attn.proj.", "swin.encoder.layers.{layer}.blocks.{block}.attention.o_proj."),
    (
        "layers.{layer}.blocks.{block}.attn.relative_position_bias_table",
        "swin.encoder.layers.{layer}.blocks.{block}.attention.relative_position_bias.relative_position_bias_table",
    ),
    ("layers.{layer}.blocks.{block}.mlp.", "swin.encoder.layers.{layer}.blocks.{block}.mlp."),
    ("layers.{layer}.downsample.", "swin.encoder.layers.{layer}.downsample."),
)
_QKV = re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$")
_OUT_NORM = re.compile(r"^norm(\d+)\.(weight|bias)$")
_HF_QKV = re.compile(r"^swin\.encoder\.layers\.(\d+)\.blocks\.(\d+)\.attention\.([qkv])_proj\.(weight|bias)$")
_HF_OUT_NORM = re.compile(r"^hidden_states_norms\.stage(\d+)\.(weight|bias)$")


def _prefix_pattern(template: str) -> re.Pattern[str]:
    """Regex matching a key that starts with `template`, capturing {layer}/{block} as named groups."""
    escaped = re.escape(template).replace(r"\{layer\}", r"(?P<layer>\d+)").replace(r"\{block\}", r"(?P<block>\d+)")
    return re.compile("^" + escaped)


def _rename_prefix(key: str, direction: int) -> str | None:
    """Rename `key` by the first matching prefix pair; direction 0 = ours -> transformers, 1 = the reverse."""
    for pair in _RENAMED_PREFIXES:
        source, target = pair[direction], pair[1 - direction]
        if match := _prefix_pattern(source).match(key):
            return target.format(**match.groupdict()) + key[match.end() :]
    return None


def swin_to_transformers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a `SwinTransformer` state dict (keys without the `backbone.body.` prefix) to `SwinBackbone` keys.

    The fused `qkv` splits into `q_proj`/`k_proj`/`v_proj` (rows in q, k, v order); `norm{i}` becomes
    `hidden_states_norms.stage{i+1}` (transformers calls the patch embedding "stem" and counts stages from 1);
    `relative_position_index` is dropped (a non-persistent buffer there). `swin.layernorm` (SwinModel's final norm,
    unused by SwinBackbone) has no counterpart and stays absent.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith("relative_position_index"):
            continue
        if match := _QKV.match(key):
            layer, block, kind = match.groups()
            for name, part in zip("qkv", value.chunk(3, dim=0)):
                out[f"swin.encoder.layers.{layer}.blocks.{block}.attention.{name}_proj.{kind}"] = part.clone()
        elif match := _OUT_NORM.match(key):
            out[f"hidden_states_norms.stage{int(match.group(1)) + 1}.{match.group(2)}"] = value
        elif (new_key := _rename_prefix(key, 0)) is not None:
            out[new_key] = value
        else:
            raise KeyError(f"no transformers counterpart for Swin key {key!r}")
    return out


def swin_from_transformers(state_dict: dict[str, torch.Tensor], window_size: int) -> dict[str, torch.Tensor]:
    """Inverse of `swin_to_transformers`; recomputes each block's `relative_position_index` for `window_size`.

    `swin.layernorm.*` (SwinModel's final norm, no counterpart here) is skipped.
    """
    out: dict[str, torch.Tensor] = {}
    split_qkv: dict[tuple[str, str, str], dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        if key.startswith("swin.layernorm."):
            continue
        if match := _HF_QKV.match(key):
            layer, block, name, kind = match.groups()
            split_qkv.setdefault((layer, block, kind), {})[name] = value
        elif match := _HF_OUT_NORM.match(key):
            out[f"norm{int(match.group(1)) - 1}.{match.group(2)}"] = value
        elif (new_key := _rename_prefix(key, 1)) is not None:
            out[new_key] = value
        else:
            raise KeyError(f"no Swin counterpart for transformers key {key!r}")
    for (layer, block, kind), parts in split_qkv.items():
        out[f"layers.{layer}.blocks.{block}.attn.qkv.{kind}"] = torch.cat([parts[name] for name in "qkv"], dim=0)
        if kind == "weight":
            out[f"layers.{layer}.blocks.{block}.attn.relative_position_index"] = relative_position_index(window_size)
    return out
