"""GLIP weights in and out: the official `.pth` layout (`{"model": {"module.<key>": tensor}, "model_ema"?: ...}`,
read with torch's tensors-only unpickler, never plain pickle) and this project's own folders (`glip_config.json` +
`model.safetensors`).

Loading is strict: every key of the model must be in the file and nothing else may be, except an allow-list of
entries that carry no learnt information: the unused `cls_logits`, buffers the model recomputes from its
configuration (anchors, Swin's relative position indices, checked equal when the file has them) and BERT's
`position_ids`, which older transformers versions saved.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from sdpt.detector.glip.model import GlipConfig, GlipModel

logger = logging.getLogger(__name__)

CONFIG_NAME = "glip_config.json"
WEIGHTS_NAME = "model.safetensors"
MAY_BE_ABSENT = ("rpn.head.cls_logits.", "rpn.anchor_generator.cell_anchors.", "relative_position_index")
MAY_BE_EXTRA = ("language_backbone.body.model.embeddings.position_ids",)


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model; the message names the keys."""


def official_entries(raw: dict, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """The model's entries of an official checkpoint dict, `module.` stripped."""
    key = "model_ema" if use_ema else "model"
    if key not in raw:
        raise CheckpointError(f"the checkpoint has no {key!r} entry (it has {sorted(raw)[:5]}); is it a GLIP .pth?")
    return {name.removeprefix("module."): tensor for name, tensor in raw[key].items()}


def load_entries(model: GlipModel, entries: dict[str, torch.Tensor]) -> None:
    """Strict load with the allow-list above; recomputed buffers must equal the file's when it has them."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in entries and not any(p in k for p in MAY_BE_ABSENT)]
    extra = [k for k in entries if k not in expected and k not in MAY_BE_EXTRA]
    if missing or extra:
        raise CheckpointError(f"the checkpoint does not fit GLIP's layout: {len(missing)} missing (e.g. "
                              f"{missing[:3]}), {len(extra)} unexpected (e.g. {extra[:3]})")
    wrong = [k for k, v in entries.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise CheckpointError(f"{len(wrong)} entries have another shape than this configuration's, e.g. {wrong[0]}: "
                              f"{tuple(entries[wrong[0]].shape)} against {tuple(expected[wrong[0]].shape)}")
    for name, value in entries.items():
        if name in expected and isinstance(value, torch.Tensor) and not value.is_floating_point() \
                and not torch.equal(value.to(expected[name].dtype), expected[name]):
            raise CheckpointError(f"{name} differs from what this configuration computes")
    learnt = {k: v for k, v in entries.items() if k in expected}
    result = model.load_state_dict(learnt, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys


def load_official(path: Path, config: GlipConfig | None = None, use_ema: bool = False) -> GlipModel:
    """A GlipModel (GLIP-T unless `config` says otherwise) with an official `.pth` file's weights."""
    raw = torch.load(Path(path), map_location="cpu", weights_only=True)  # tensors only: no code runs
    model = GlipModel(config or GlipConfig.glip_t())
    load_entries(model, official_entries(raw, use_ema))
    logger.info("loaded %s (%d parameters)", path, sum(p.numel() for p in model.parameters()))
    return model.eval()


def save_official(model: GlipModel, path: Path) -> None:
    """The official layout (for tests and for sharing with GLIP's own code)."""
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}}, Path(path))


def save_pretrained(model: GlipModel, directory: Path) -> None:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.config.save(directory / CONFIG_NAME)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / WEIGHTS_NAME))


def from_pretrained(directory: Path) -> GlipModel:
    from safetensors.torch import load_file

    directory = Path(directory)
    model = GlipModel(GlipConfig.load(directory / CONFIG_NAME))
    load_entries(model, load_file(str(directory / WEIGHTS_NAME)))
    return model.eval()
