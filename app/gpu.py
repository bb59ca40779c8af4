"""Hugging Face ZeroGPU support: GPU work runs inside `spaces.GPU` calls when the app runs on a ZeroGPU Space;
everywhere else (no `spaces` package, or a Space with a dedicated GPU) the same functions run unchanged."""
from __future__ import annotations

import os

try:
    import spaces
except ImportError:  # not on a Space: nothing to wrap
    spaces = None

TUNING_CHUNK_S = 45.0  # tuning per GPU call: well inside ZeroGPU's call limit, the rest is loading and saving


def on_zero_gpu() -> bool:
    return spaces is not None and bool(os.environ.get("SPACES_ZERO_GPU"))


def gpu(duration: int = 60):
    """Decorator: a `spaces.GPU` call of at most `duration` seconds on ZeroGPU, the plain function elsewhere."""
    def wrap(function):
        return spaces.GPU(duration=duration)(function) if on_zero_gpu() else function
    return wrap
