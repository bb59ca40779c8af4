"""What Grad-CAM needs on GLIP: the explained map (the FPN's finest output, P3, as it enters the dynamic head), a model
from pixels to each class's best anchor score (the product GLIP's post-processing ranks), gradients that reach the
frozen model's map, an end-to-end pytorch-grad-cam run, and a hook that goes away on close()."""
import numpy as np
import pytest
import torch
from PIL import Image

from sdpt.detector.glip.cam_target import ClassScores, cam_layer, cam_layer_name, cam_target
from sdpt.detector.glip.detector import GlipDetector
from sdpt.detector.glip.inputs import encode
from sdpt.detector.glip.model import GlipConfig, GlipModel
from sdpt.detector.glip.postprocess import glip_detections
from sdpt.detector.grounding_dino.loading import tiny_vocab
from sdpt.detector.host import CamTarget

NAMES = ["red box", "cat", "traffic light"]


@pytest.fixture(scope="module")
def detector() -> GlipDetector:
    from transformers import BertTokenizer

    torch.manual_seed(0)
    return GlipDetector(GlipModel(GlipConfig.tiny()), BertTokenizer(vocab=tiny_vocab(), do_lower_case=True))


@pytest.fixture(scope="module")
def batch(detector):
    pixels = np.random.default_rng(0).integers(0, 256, (100, 130, 3), dtype=np.uint8)
    return encode([Image.fromarray(pixels)], [NAMES], detector.tokenizer, detector.config)  # 128 x 166 in 128 x 192


def test_the_target_explains_the_finest_fpn_output_and_knows_the_padding(detector, batch):
    target = cam_target(detector, batch)
    try:
        assert isinstance(target, CamTarget) and isinstance(target.model, ClassScores)
        assert cam_layer_name() == "backbone.fpn.fpn_layer2"
        assert target.layer is cam_layer(detector.model) is detector.model.get_submodule(cam_layer_name())
        assert target.pixels.shape == (1, 3, 128, 192) and target.valid == (128, 166)
        seen = []
        handle = target.layer.register_forward_hook(lambda module, inputs, output: seen.append(output))
        with torch.no_grad():
            features = detector.model.backbone(target.pixels)
        handle.remove()
        assert seen[0] is features[0] and features[0].shape[-2:] == (128 // 8, 192 // 8)  # P3, stride 8
    finally:
        target.model.close()
    assert cam_layer(detector.model, 4) is detector.model.backbone.fpn.top_blocks.p7
    with pytest.raises(ValueError):
        cam_layer_name(5)


def test_class_scores_are_each_classs_best_ranked_anchor_score(detector, batch):
    with torch.no_grad():
        out = detector.model(batch.pixel_values, batch.input_ids, batch.attention_mask)
    p = out.predictions
    token_probs = p.dot_product_logits[0].sigmoid()  # (A, T)
    centre_probs = p.flat_centerness()[0].sigmoid()  # (A,)
    expected = torch.stack([token_probs[:, row.bool()].mean(dim=1) * centre_probs for row in batch.class_maps[0]],
                           dim=1).max(dim=0).values[None]  # (1, C)
    # The detections agree: a class's best detection score is the square root of its best ranked score.
    detections = glip_detections(p.flat_box_regression(), p.flat_centerness(), p.dot_product_logits,
                                 out.flat_anchors, p.level_counts, batch.class_maps, batch.resized_sizes, NAMES,
                                 pre_nms_threshold=0.0, pre_nms_top_n=10**6, detections_per_image=10**6)[0]
    best = torch.stack([detections.scores[detections.classes == c].max() for c in range(len(NAMES))])
    assert torch.allclose(best[None] ** 2, expected, rtol=1e-5)

    target = cam_target(detector, batch)
    try:
        with torch.no_grad():
            scores = target.model(target.pixels)
    finally:
        target.model.close()
    assert scores.shape == (1, len(NAMES))
    assert torch.allclose(scores, expected, rtol=1e-5, atol=1e-7)


def test_gradients_reach_the_explained_map_and_stop_there(detector, batch):
    target = cam_target(detector, batch)
    seen = []
    # Registered after ClassScores' hook, so it sees the map that hook hands on.
    handle = target.layer.register_forward_hook(lambda module, inputs, output: seen.append(output))
    pixels = target.pixels.clone().requires_grad_(True)
    try:
        scores = target.model(pixels)
        scores[0, 1].backward()
    finally:
        handle.remove()
        target.model.close()
    leaf = seen[0]
    assert leaf.is_leaf and leaf.requires_grad and leaf.grad is not None
    assert leaf.grad.shape == leaf.shape and torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0
    assert pixels.grad is None  # the frozen backbone below the map is not differentiated
    assert all(parameter.grad is None for parameter in detector.model.parameters())


def test_grad_cam_runs_end_to_end_and_close_removes_the_hook(detector, batch):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer = cam_layer(detector.model)
    before = dict(layer._forward_hooks)
    target = cam_target(detector, batch)
    assert len(layer._forward_hooks) == len(before) + 1
    try:
        with torch.enable_grad(), GradCAM(model=target.model, target_layers=[target.layer]) as cam:
            heat = cam(input_tensor=target.pixels, targets=[ClassifierOutputTarget(2)])[0]
    finally:
        target.model.close()
    assert heat.shape == tuple(target.pixels.shape[-2:]) and np.isfinite(heat).all()
    assert heat[: target.valid[0], : target.valid[1]].shape == (128, 166)
    assert dict(layer._forward_hooks) == before
    with torch.enable_grad():
        assert not detector.model.backbone(batch.pixel_values)[0].requires_grad  # a plain frozen map again
