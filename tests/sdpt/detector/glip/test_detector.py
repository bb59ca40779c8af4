"""GLIP end to end on a tiny random model: images and class names in, detections in the images' own pixels out;
inputs sized and normalised as GLIP's test transform; many classes split over captions; a batch's loss; the fusion
layer-scales set through the host."""
import pytest
import torch
from PIL import Image

from sdpt.detector.glip.detector import GlipDetector
from sdpt.detector.glip.inputs import encode, resized_size
from sdpt.detector.glip.model import GlipConfig, GlipModel
from sdpt.detector.prompts import tiny_vocab
from sdpt.inference import detect


def tiny_detector() -> GlipDetector:
    from transformers import BertTokenizer

    torch.manual_seed(0)
    return GlipDetector(GlipModel(GlipConfig.tiny()), BertTokenizer(vocab=tiny_vocab(), do_lower_case=True))


def test_resizing_follows_glips_test_transform():
    assert resized_size(480, 640, 800, 1333) == (800, 1066)
    assert resized_size(300, 1200, 800, 1333) == (333, 1332)  # capped: int(333 * 1200 / 300), as GLIP rounds
    assert resized_size(800, 600, 800, 1333) == (1066, 800)


def test_inputs_are_bgr_normalised_padded_and_the_class_map_points_at_each_name():
    detector = tiny_detector()
    config = detector.config
    image = Image.new("RGB", (150, 100), (255, 0, 0))  # pure red
    batch = encode([image], [["red box", "cat"]], detector.tokenizer, config,
                   targets=[{"boxes": [[10, 10, 60, 50]], "classes": [1]}])
    height, width = batch.resized_sizes[0]
    assert (height, width) == (128, 192) and batch.pixel_values.shape[-2:] == (128, 192)
    blue, red = batch.pixel_values[0, 0, 0, 0], batch.pixel_values[0, 2, 0, 0]  # BGR order
    assert torch.isclose(red, torch.tensor((255 - config.pixel_mean[2]) / config.pixel_std[2]))
    assert torch.isclose(blue, torch.tensor((0 - config.pixel_mean[0]) / config.pixel_std[0]))
    ids = batch.input_ids[0]
    spelled = [detector.tokenizer.decode(ids[m.bool()]).replace(" ##", "") for m in batch.class_maps[0]]
    assert [s.replace(" ", "") for s in spelled] == ["redbox", "cat"]
    assert torch.equal(batch.token_maps[0][0], batch.class_maps[0][1])  # the box's class is "cat"
    assert torch.allclose(batch.boxes[0], torch.tensor([[10, 10, 60, 50]]) * 128 / 100)


def test_detections_come_back_in_the_images_pixels_and_many_classes_are_split():
    detector = tiny_detector()
    images = [Image.new("RGB", (150, 100), (200, 30, 30)), Image.new("RGB", (90, 120), (30, 30, 200))]
    found = detect(detector, images, ["red box", "blue box"], threshold=0.0)
    for detections, image in zip(found, images):
        assert len(detections) > 0 and detections.class_names == ["red box", "blue box"]
        assert (detections.boxes[:, 2] <= image.width).all() and (detections.boxes[:, 3] <= image.height).all()
    names = [f"thing {chr(97 + k % 26)}{chr(97 + k // 26)}" for k in range(20)]  # 20 names over a 64-token limit
    many = detect(detector, images[:1], names, threshold=0.0)[0]
    assert set(many.classes.tolist()) <= set(range(20)) and max(many.classes.tolist()) >= 10


def test_the_loss_of_a_batch_has_glips_three_terms():
    detector = tiny_detector()
    image = Image.new("RGB", (150, 100), (200, 30, 30))
    batch = encode([image], [["red box"]], detector.tokenizer, detector.config,
                   targets=[{"boxes": [[20, 20, 90, 70]], "classes": [0]}])
    loss, parts = detector.batch_loss(batch)
    assert set(parts) == {"token_focal", "giou", "centerness"} and torch.isfinite(loss)


def test_set_fusion_scale_fills_both_layer_scales_of_every_fusion_block():
    detector = tiny_detector()
    detector.set_fusion_scale(0.25)
    for block in detector.fusion_blocks:
        assert torch.equal(block.gamma_v, torch.full_like(block.gamma_v, 0.25))
        assert torch.equal(block.gamma_l, torch.full_like(block.gamma_l, 0.25))
    with pytest.raises(ValueError, match="positive"):
        detector.set_fusion_scale(0.0)
