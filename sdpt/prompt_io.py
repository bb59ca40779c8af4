"""Prompt files: a directory with `prompt_config.json` and `prompt.safetensors` (trainable tensors only)."""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from sdpt.config import ConfigError, to_dict
from sdpt.methods import METHODS, PromptMethod, build_method
from sdpt.routing import Routing, RoutingError

logger = logging.getLogger(__name__)

CONFIG_NAME = "prompt_config.json"
WEIGHTS_NAME = "prompt.safetensors"
# 1: fusion methods acted through the shared-softmax gate (no 'injection' option existed).
# 2: fusion methods record their 'injection'; the default became 'branch'.
# 3: a 'routing' entry says which model answers for each class (sdpt/routing.py); older files route every class
#    to the prompt, as they always did.
# 4: a 'host' entry names the detector family the prompt was tuned on (sdpt.detector.HOSTS); older files were all
#    tuned on Grounding DINO.
FORMAT_VERSION = 4


_HOST_NAMES = {"grounding_dino": "Grounding DINO", "glip": "GLIP"}


class PromptFileError(ValueError):
    """A prompt directory that cannot be loaded (missing, malformed, or made for another base model)."""


def save_prompt(prompt: PromptMethod, directory: str | Path, class_names: list[str], extra: dict | None = None) -> Path:
    """Write the prompt's config (method, options, classes, base model and its fingerprint) and tensors."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "format_version": FORMAT_VERSION,
        "method": prompt.name,
        "options": to_dict(prompt.config),
        "class_names": list(class_names),
        "host": prompt.detector.host,
        "base_model": prompt.base_model_id,
        "base_fingerprint": prompt.base_fingerprint,
        "trainable_parameters": prompt.trainable_parameters(),
        **(extra or {}),
    }
    if prompt.routing is not None:
        config["routing"] = prompt.routing.to_dict()
    # save_model drops tied duplicates (full fine-tuning shares box heads); non-persistent buffers are not saved.
    save_model(prompt, str(directory / WEIGHTS_NAME), metadata={"method": prompt.name})
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    logger.info("saved %s prompt (%d parameters) to %s", prompt.name, prompt.trainable_parameters(), directory)
    return directory


def read_prompt_config(directory: str | Path) -> dict:
    directory = Path(directory)
    path = directory / CONFIG_NAME
    if not directory.is_dir() or not path.is_file():
        raise PromptFileError(f"'{directory}' is not a prompt directory: it needs {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PromptFileError(f"{path} is not valid JSON ({error})") from error
    missing = [k for k in ("method", "options", "class_names", "base_model", "base_fingerprint") if k not in config]
    if missing:
        raise PromptFileError(f"{path} is not a prompt config: it lacks {missing}")
    if config["method"] not in METHODS:
        raise PromptFileError(f"{path} names method {config['method']!r}; known methods: {sorted(METHODS)}")
    version = config.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PromptFileError(f"{path} has prompt format {version!r}; this release reads formats 1-{FORMAT_VERSION}: "
                              f"update the app to load it")
    if version < 2 and isinstance(config["options"], dict):
        _upgrade_from_format_1(config)
    return config


def _upgrade_from_format_1(config: dict) -> None:
    """Format 1 predates the 'injection' option: its fusion prompts acted through the shared-softmax gate."""
    fields = {f.name for f in dataclasses.fields(METHODS[config["method"]].config_class)}
    if "injection" in fields:
        config["options"].setdefault("injection", "shared_gate")
    if "per_head_scales" in fields:  # later defaults must not change an old file's meaning
        config["options"].setdefault("per_head_scales", False)


def load_prompt(directory: str | Path, detector) -> tuple[PromptMethod, dict]:
    """Rebuild a saved prompt on `detector`; refuse it when the detector is not the base it was tuned on."""
    directory = Path(directory)
    config = read_prompt_config(directory)
    host = config.get("host", "grounding_dino")
    if host != detector.host:
        raise PromptFileError(
            f"prompt '{directory}' was tuned on a {_HOST_NAMES.get(host, host)} host (base model "
            f"'{config['base_model']}'), but the loaded model '{detector.model_id}' is {_HOST_NAMES.get(detector.host)}; "
            f"a prompt lives in its host's fusion layers and cannot move to another host: load it with --model "
            f"{config['base_model']}")
    fingerprint = detector.fingerprint()
    if config["base_fingerprint"] != fingerprint:
        raise PromptFileError(
            f"prompt '{directory}' was tuned on base model '{config['base_model']}' (fingerprint "
            f"{config['base_fingerprint']}), but the loaded model '{detector.model_id}' has fingerprint {fingerprint}; "
            f"load it with --model {config['base_model']}")
    try:
        prompt = build_method(config["method"], detector, config["options"])
    except (ConfigError, TypeError) as error:
        raise PromptFileError(f"{directory / CONFIG_NAME} has invalid options ({error})") from error
    try:
        load_model(prompt, str(directory / WEIGHTS_NAME), strict=True, device=str(detector.device))
    except (FileNotFoundError, SafetensorError, OSError) as error:
        raise PromptFileError(f"{directory / WEIGHTS_NAME} cannot be read as safetensors ({error})") from error
    except RuntimeError as error:  # missing, unexpected or mis-shaped tensors
        raise PromptFileError(f"{directory / WEIGHTS_NAME} does not match its config ({error})") from error
    if config.get("routing") is not None:
        try:
            prompt.routing = Routing.from_dict(config["routing"])
        except RoutingError as error:
            raise PromptFileError(f"{directory / CONFIG_NAME}: {error}") from error
    prompt.eval()
    return prompt, config


def save_routing(directory: str | Path, routing: Routing) -> None:
    """Rewrite only the routing of a saved prompt (a person's override, or routes chosen on held-out images)."""
    path = Path(directory) / CONFIG_NAME
    config = read_prompt_config(directory)
    config["routing"] = routing.to_dict()
    config["format_version"] = max(int(config.get("format_version", 1)), 3)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    temporary.replace(path)  # atomic: a reader sees the old file or the new one


STATE_NAME = "tune_state.safetensors"
STATE_META = "tune_state.json"


def save_tune_state(directory: str | Path, prompt: PromptMethod, state) -> Path:
    """A paused run (see `tune(max_seconds=...)`): prompt tensors, optimizer moments (safetensors) and the step and
    optimizer settings (JSON); no pickle anywhere."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"{index}.{name}": value.detach().contiguous().cpu() for index, entry in state.optimizer["state"].items()
               for name, value in entry.items()}
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}
              for group in state.optimizer["param_groups"]]
    save_model(prompt, str(directory / WEIGHTS_NAME))
    save_file(tensors, str(directory / STATE_NAME))
    (directory / STATE_META).write_text(json.dumps({"step": state.step, "param_groups": groups}))
    return directory


def load_tune_state(directory: str | Path, prompt: PromptMethod):
    """Restore a paused run's prompt tensors into `prompt` and return its `TuneState`."""
    from sdpt.train import TuneState

    directory = Path(directory)
    try:
        meta = json.loads((directory / STATE_META).read_text())
        tensors = load_file(str(directory / STATE_NAME))
        load_model(prompt, str(directory / WEIGHTS_NAME), strict=True, device=str(prompt.detector.device))
    except (OSError, ValueError, SafetensorError, RuntimeError) as error:
        raise PromptFileError(f"'{directory}' holds no readable paused tuning run ({error})") from error
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value.to(prompt.detector.device) if name != "step" else value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in group.items()} for group in meta["param_groups"]]
    return TuneState(meta["step"], {"state": state, "param_groups": groups})
