"""Class-specific CAMs through pytorch-grad-cam on the shipped small detector: maps differ between classes and
between the zero-shot and the prompted model, and come back at the image's own size."""
from pathlib import Path

import numpy as np
import pytest
import torch

from sdpt.synthetic.grounding import PRETRAIN, make_scene
from tests.prompt_helpers import open_up

ASSET = Path(__file__).resolve().parents[2] / "assets" / "sdpt-small"


@pytest.fixture(scope="module")
def small():
    from sdpt.detector import load_detector

    return load_detector(str(ASSET), device="cpu")


@pytest.fixture(scope="module")
def scene():
    import random

    image, objects = make_scene(PRETRAIN, random.Random(3))
    present = sorted({name for _, name in objects})
    assert len({name.split()[1] for name in present}) >= 2  # two shapes, so two classes that truly differ
    return image, present


def opened_prompt(detector):
    from sdpt.methods import build_method

    prompt = build_method("sdpt", detector, seed=2)
    # As after tuning: branch scales open, prototypes moved away from their init.
    return open_up(prompt, token_gain=4.0)


def test_cam_depends_on_the_class_and_the_prompt(small, scene):
    from sdpt.cam import cam_overlay, class_cam

    image, present = scene
    names = present + [n for n in ("black ring", "white cross") if n not in present]
    first = class_cam(small, image, names, 0)
    second = class_cam(small, image, names, 1)  # another present class, of another shape
    prompted = class_cam(small, image, names, 0, prompt=opened_prompt(small))
    assert first.shape == (image.height, image.width)
    assert 0.0 <= first.min() and first.max() <= 1.0 + 1e-6 and first.max() > 0
    assert np.abs(first - second).mean() > 0.01  # class-specific
    # an untuned prompt (gate closed) leaves the map as it was; an opened one changes where the model looks
    from sdpt.methods import build_method
    closed = class_cam(small, image, names, 0, prompt=build_method("sdpt", small, seed=2))
    assert np.abs(first - closed).mean() < 1e-4
    assert np.abs(first - prompted).mean() > 2e-3
    overlay = cam_overlay(image, first)
    assert overlay.size == image.size and overlay.mode == "RGB"


def test_cam_refuses_a_class_outside_the_list(small, scene):
    from sdpt.cam import class_cam

    image, present = scene
    with pytest.raises(ValueError, match="outside"):
        class_cam(small, image, present, len(present))
