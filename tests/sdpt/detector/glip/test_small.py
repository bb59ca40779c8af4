"""The small GLIP: GLIP's topology with the packaged MiniLM text encoder (weights loaded, not random), gamma at
1 / layers, and a saved folder (without MiniLM) that loads back to the same detections."""
import torch
from PIL import Image

from sdpt.detector.glip.small import TEXT_KEY_PREFIX, build_small_glip, load_small_glip, save_small_glip
from sdpt.inference import detect


def test_the_small_glip_round_trips_without_its_text_encoder(tmp_path):
    from safetensors.torch import load_file

    detector = build_small_glip(seed=0)
    assert detector.config.head_layers == 2 and detector.config.bert["hidden_size"] == 384
    gammas = [f.b_attn.gamma_v for f in detector.model.rpn.head.fusion_layers]
    assert all(torch.allclose(g, torch.full_like(g, 0.5)) for g in gammas)  # 1 / layers, as GLIP-T's 1/6
    save_small_glip(detector, tmp_path / "glip-small")
    saved = load_file(str(tmp_path / "glip-small" / "model.safetensors"))
    assert saved and not any(k.startswith(TEXT_KEY_PREFIX) for k in saved)  # MiniLM comes from the package
    again = load_small_glip(tmp_path / "glip-small")
    image = Image.new("RGB", (160, 128), (200, 40, 40))
    first = detect(detector, [image], ["red circle", "blue square"], threshold=0.0)[0]
    second = detect(again, [image], ["red circle", "blue square"], threshold=0.0)[0]
    assert torch.equal(first.scores, second.scores) and torch.equal(first.boxes, second.boxes)
