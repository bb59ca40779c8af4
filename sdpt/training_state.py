"""A long training run's state on disk, so it can stop at any time and go on later on the same schedule.

What is kept: the optimizer's per-parameter tensors (AdamW's moments and step counts, in safetensors, never
pickle), its parameter groups and the number of steps done (JSON). The model's own weights are saved by the caller
in its usual format; the learning-rate schedule is rebuilt and stepped forward to the saved step.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

STATE_WEIGHTS = "optimizer.safetensors"
STATE_JSON = "training_state.json"


def save_training_state(directory: Path, optimizer: torch.optim.Optimizer, step: int, extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = optimizer.state_dict()
    tensors = {}
    scalars = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().contiguous().clone()
            else:
                scalars[f"{index}.{key}"] = value
    # Write to temporary names first: a run killed while saving leaves the previous state whole.
    save_file(tensors, str(directory / (STATE_WEIGHTS + ".tmp")))
    (directory / (STATE_JSON + ".tmp")).write_text(json.dumps(
        {"step": step, "param_groups": state["param_groups"], "scalars": scalars, **(extra or {})}, indent=1))
    (directory / (STATE_WEIGHTS + ".tmp")).replace(directory / STATE_WEIGHTS)
    (directory / (STATE_JSON + ".tmp")).replace(directory / STATE_JSON)


def has_training_state(directory: Path) -> bool:
    return (Path(directory) / STATE_JSON).is_file() and (Path(directory) / STATE_WEIGHTS).is_file()


def load_training_state(directory: Path, optimizer: torch.optim.Optimizer, schedule=None) -> dict:
    """Restore `optimizer` (and step `schedule` forward) from `directory`; returns the saved JSON (with "step")."""
    from safetensors.torch import load_file

    directory = Path(directory)
    saved = json.loads((directory / STATE_JSON).read_text())
    tensors = load_file(str(directory / STATE_WEIGHTS))
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for name, value in saved["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    if schedule is not None:
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": intended when fast-forwarding
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(saved["step"]):
                schedule.step()
    return saved
