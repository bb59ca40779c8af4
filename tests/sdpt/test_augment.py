"""The augmented views move each box with its object, and a tuning run with augmentation trains on them."""
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from sdpt.augment import mirrored, with_views, zoomed_out
from sdpt.data import FewShotSet, Sample


def picture_with_box() -> tuple[Image.Image, Sample]:
    image = Image.new("RGB", (200, 100), (240, 240, 240))
    ImageDraw.Draw(image).rectangle([20, 10, 59, 49], fill=(220, 20, 20))  # pixels 20..59 x 10..49
    sample = Sample(Path("unused.png"), 200, 100, torch.tensor([[20.0, 10.0, 60.0, 50.0]]), torch.tensor([0]))
    return image, sample


def red_share(image: Image.Image, box: torch.Tensor) -> float:
    x0, y0, x1, y1 = (round(v) for v in box.tolist())
    crop = image.crop((x0, y0, x1, y1)).convert("RGB")
    pixels = list(crop.getdata())
    return sum(1 for r, g, b in pixels if r > 150 and g < 100) / len(pixels)


@pytest.mark.parametrize("view", [mirrored, zoomed_out])
def test_each_view_keeps_the_box_on_its_object(view):
    image, sample = picture_with_box()
    moved_image, moved = view(image, sample)
    assert moved_image.size == image.size
    assert red_share(moved_image, moved.boxes[0]) > 0.9
    assert torch.equal(moved.classes, sample.classes)
    assert red_share(moved_image, sample.boxes[0]) < 0.5  # the object did move


def test_mirror_boxes_exactly():
    image, sample = picture_with_box()
    _, moved = mirrored(image, sample)
    assert moved.boxes.tolist() == [[140.0, 10.0, 180.0, 50.0]]
    assert sample.boxes.tolist() == [[20.0, 10.0, 60.0, 50.0]]  # the original is left alone


def test_views_follow_the_originals():
    image, sample = picture_with_box()
    dataset, images = with_views(FewShotSet(["red box"], [sample]), [image])
    assert len(dataset) == len(images) == 3
    assert dataset.samples[0] is sample and images[0] is image


def test_tuning_with_augmentation_sees_the_views(detector, shapes_set):
    """With augmentation an epoch holds 3x the batches, so over the same steps the runs see other images and end
    with other prompts; without it, two runs agree exactly (same seed)."""
    from sdpt.config import TrainConfig
    from sdpt.methods import build_method
    from sdpt.train import tune

    ends = {}
    for augment in (False, True):
        prompt = build_method("sdpt", detector, {"layers": [-1]})
        result = tune(detector, shapes_set, prompt, TrainConfig(steps=6, batch_size=2, augment=augment, seed=3))
        assert len(result.history) == 6 and all(torch.isfinite(torch.tensor(h.loss)) for h in result.history)
        ends[augment] = [h.loss for h in result.history]
    assert ends[False] != ends[True]
