"""Shared fixtures: a small random detector whose fusion acts, and a synthetic COCO set written to disk."""
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def detector():
    from sdpt.detector import load_detector

    return load_detector("tiny-random", device="cpu")


@pytest.fixture(scope="session")
def glip_detector():
    """GLIP's topology at test widths with random weights: the second host."""
    from sdpt.detector import GLIP_TINY_RANDOM, load_detector

    return load_detector(GLIP_TINY_RANDOM, device="cpu")


@pytest.fixture(scope="session")
def shapes(tmp_path_factory):
    """(annotation path, images dir) of 4 synthetic images with 'red square' and 'blue circle' boxes."""
    from sdpt.synthetic import make_shapes_dataset

    root = tmp_path_factory.mktemp("shapes")
    return make_shapes_dataset(root, num_images=4, seed=1), root / "images"


@pytest.fixture(scope="session")
def shapes_set(shapes):
    from sdpt.data import load_coco

    return load_coco(*shapes)


SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "assets" / "sdpt-small"


@pytest.fixture(scope="session")
def shipped_detector():
    """The shipped small model: trained weights, so what tuning does to it does not hang on one random init."""
    from sdpt.detector import load_detector

    return load_detector(str(SHIPPED_MODEL), device="cpu")
