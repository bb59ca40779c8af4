"""What pre-training the small detectors has in common, whatever the host: the prompts, the optimizer and its
schedule, and the held-out set.

Every host pre-trains on the same synthetic stream (`sdpt.synthetic.grounding.PRETRAIN`) with the same per-image
prompts and is judged on the same held-out images, so that the small models of different hosts can be compared.
The training loops themselves are the hosts' own (`sdpt.detector.pretrainers` finds them); this module knows no host.
"""
from __future__ import annotations

import math
import random
import tempfile
from pathlib import Path

import torch

from sdpt.data import FewShotSet, load_coco
from sdpt.synthetic.grounding import PRETRAIN, write_coco

HELD_OUT_SEED = 10_000  # the held-out pre-training-concept set: `python -m sdpt.synthetic pretrain --seed 10000`


def prompt_for(objects, class_names: list[str], rng: random.Random, max_classes: int):
    """(class names of the prompt, targets) for one scene: its classes plus absent ones, shuffled.

    With `max_classes` >= the class count every prompt names every class (as evaluation does); otherwise a random
    number of random absent classes is added.
    """
    present = sorted({name for _, name in objects})
    absent = [n for n in class_names if n not in present]
    if max_classes >= len(class_names):
        extra = len(absent)
    else:
        most = max(0, max_classes - len(present))
        extra = rng.randint(min(most, max(0, 4 - len(present))), most)  # at least 4 classes where allowed
    names = present + rng.sample(absent, min(extra, len(absent)))
    rng.shuffle(names)
    index = {name: k for k, name in enumerate(names)}
    return names, {"boxes": [box for box, _ in objects], "classes": [index[name] for _, name in objects]}


def optimizer_and_schedule(trainable: list, lr: float, steps: int):
    """AdamW with a linear warm-up (a tenth of the run, at most 300 steps) into a cosine decay over `steps`."""
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=1e-4)
    warmup = max(1, min(300, steps // 10))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / steps))))
    return optimizer, schedule


def held_out_set(images: int, prefix: str = "sdpt-heldout-") -> FewShotSet:
    """The first `images` of the held-out set of pre-training concepts, written to a new temporary folder."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    return load_coco(write_coco(directory, PRETRAIN, images, HELD_OUT_SEED), directory / "images")
