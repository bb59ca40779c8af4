"""Prompt methods, one file each; `METHODS` maps a method's name to its class."""
from sdpt.methods.base import PromptMethod
from sdpt.methods.dpt import DPTPrompt
from sdpt.methods.dual import DualPrompt
from sdpt.methods.full import FullFineTune
from sdpt.methods.fusion_finetune import FusionFineTune
from sdpt.methods.sdpt import SDPTPrompt
from sdpt.methods.text import TextPrompt
from sdpt.methods.upt import UPTPrompt
from sdpt.methods.visual import VisualPrompt

METHODS: dict[str, type[PromptMethod]] = {
    cls.name: cls for cls in (SDPTPrompt, TextPrompt, VisualPrompt, DualPrompt, UPTPrompt, DPTPrompt, FusionFineTune,
                               FullFineTune)
}

# The method the CLI and the app tune with unless told otherwise: the winner of the few-shot table (BENCHMARKS.md).
DEFAULT_METHOD = "sdpt"


def build_method(name: str, detector, options: dict | None = None, seed: int = 0) -> PromptMethod:
    """Build method `name` for `detector` from a dict of its config fields; its random init is drawn from `seed`."""
    import torch

    from sdpt.config import ConfigError, from_dict

    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    cls = METHODS[name]
    config = from_dict(cls.config_class, options or {})
    with torch.random.fork_rng(devices=[]):  # a reproducible init that leaves the caller's random state alone
        torch.manual_seed(seed)
        return cls(config, detector)


__all__ = ["DEFAULT_METHOD", "METHODS", "PromptMethod", "build_method"]
