"""The fusion-share measure follows the fusion layer-scales: the figure behind "fusion prompts cannot move it"."""
import copy
import dataclasses

import pytest

from benchmarks.fusion_share import fusion_shares


def test_fusion_share_scales_with_the_layer_scale(detector, shapes_set):
    images = [sample.load() for sample in shapes_set.samples[:2]]
    acting = fusion_shares(detector, images, shapes_set.class_names)  # tiny-random: layer-scales 1
    quiet_detector = dataclasses.replace(detector, model=copy.deepcopy(detector.model))
    quiet_detector.set_fusion_scale(1e-4)  # transformers' initial value
    quiet = fusion_shares(quiet_detector, images, shapes_set.class_names)
    assert len(acting) == len(detector.model.model.encoder.layers)
    for loud, soft in zip(acting, quiet):
        assert loud["vision_gamma"] == pytest.approx(1.0) and soft["vision_gamma"] == pytest.approx(1e-4)
        assert loud["vision_share"] > 0.01 and loud["text_share"] > 0.01
        # Same inputs to the first fusion layer, so its update shrinks by exactly the layer-scale ratio.
        if loud["layer"] == 0:
            assert soft["vision_share"] == pytest.approx(1e-4 * loud["vision_share"], rel=1e-3)
            assert soft["text_share"] == pytest.approx(1e-4 * loud["text_share"], rel=1e-3)


def test_fusion_scale_must_be_positive(detector):
    with pytest.raises(ValueError, match="positive"):
        dataclasses.replace(detector, model=copy.deepcopy(detector.model)).set_fusion_scale(0.0)
