"""Which module pre-trains each host's small model: the one door through which `python -m sdpt.pretrain` reaches a
host's training loop without naming the host's package.

A host's pre-training module provides
- `pretrain(out, steps, batch_size, lr, seed, eval_every, eval_images, max_classes, resume, stop_at, **options)`,
  which trains, keeps the best checkpoint by held-out mAP@0.5 in `out` and returns its record;
- `DEFAULT_OUT`, where the shipped model of that host lives;
- `OPTIONS`, the command-line options only that host understands (flag -> argparse keywords, `dest` naming the
  keyword of its `pretrain`).
The modules are imported when asked for, not with `sdpt.detector`: loading a detector needs no training code.
"""
from __future__ import annotations

from importlib import import_module
from types import ModuleType

from sdpt.detector.host import HOSTS

_MODULES = {"grounding_dino": "sdpt.detector.grounding_dino.pretraining", "glip": "sdpt.detector.glip.pretraining"}


def pretrainer(host: str) -> ModuleType:
    """The pre-training module of `host` (one of `HOSTS`)."""
    if host not in _MODULES:
        raise ValueError(f"no pre-training for host {host!r}; hosts: {', '.join(HOSTS)}")
    return import_module(_MODULES[host])
