"""Prompt methods, one file each; `METHODS` maps a method's name to its class."""
from sdpt.methods.base import PromptMethod
from sdpt.methods.full import FullFineTune
from sdpt.methods.sdpt import SDPTPrompt

METHODS: dict[str, type[PromptMethod]] = {cls.name: cls for cls in (SDPTPrompt, FullFineTune)}


def build_method(name: str, detector, options: dict | None = None) -> PromptMethod:
    """Build method `name` for `detector` from a dict of its config fields."""
    from sdpt.config import ConfigError, from_dict

    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    cls = METHODS[name]
    return cls(from_dict(cls.config_class, options or {}), detector)


__all__ = ["METHODS", "PromptMethod", "build_method"]
