"""Loading detectors: tiny-random, local save_pretrained directories of both model families, and failures."""
import pytest
import torch
from transformers import MMGroundingDinoForObjectDetection

from sdpt.detector import Detector, ModelLoadError, load_detector
from sdpt.detector.grounding_dino.loading import tiny_config, tiny_processor
from sdpt.inference import detect
from sdpt.methods import build_method


def test_tiny_random_is_frozen_in_eval_mode_and_reproducible(detector):
    assert not detector.model.training
    assert all(not p.requires_grad for p in detector.model.parameters())
    assert load_detector("tiny-random", device="cpu").fingerprint() == detector.fingerprint()


def test_mm_grounding_dino_directory_loads_and_takes_sdpt(tmp_path, shapes_set):
    torch.manual_seed(0)
    model = MMGroundingDinoForObjectDetection(tiny_config("mm-grounding-dino"))
    Detector(model=model, processor=tiny_processor(), model_id="mm").save_pretrained(tmp_path / "mm")
    detector = load_detector(str(tmp_path / "mm"), device="cpu")
    assert isinstance(detector.model, MMGroundingDinoForObjectDetection)
    images = [s.path for s in shapes_set.samples[:2]]
    plain = detect(detector, images, shapes_set.class_names, threshold=0.0, top_k=10)
    prompt = build_method("sdpt", detector)
    fusion = detector.fusion_layers[0]
    per_layer = prompt.config.num_tokens * fusion.embed_dim + 2 * fusion.num_heads
    assert prompt.trainable_parameters() == len(detector.fusion_layers) * per_layer
    prompted = detect(detector, images, shapes_set.class_names, prompt, threshold=0.0, top_k=10)
    again = detect(detector, images, shapes_set.class_names, threshold=0.0, top_k=10)
    for a, b, c in zip(plain, prompted, again):
        assert torch.equal(a.boxes, c.boxes)  # detached: the plain model again
        assert torch.allclose(a.boxes, b.boxes, atol=1e-2)  # gated start: zero-shot detections


def test_missing_directory_and_wrong_model_type(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_detector(str(tmp_path / "nope"), device="cpu")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ModelLoadError, match="fusion detector"):
        load_detector(str(tmp_path / "bert"), device="cpu")
