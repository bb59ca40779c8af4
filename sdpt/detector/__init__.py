"""The home of the host detectors, the only package that knows a detector's internals.

Each host is a subpackage (`grounding_dino`, `glip`); what every host provides is the `Host` interface
(`sdpt.detector.host`). Shared here: class-prompt text (`prompts`), the prompt tokens a fusion layer receives
(`fusion_prompts`) and the detections every host returns (`detections`). `pretrainer(host)` finds the module that
pre-trains a host's small model (`pretrainers`), for `python -m sdpt.pretrain`.
"""
from sdpt.detector.host import HOSTS, Host, ModelLoadError
from sdpt.detector.loading import load_detector
from sdpt.detector.pretrainers import pretrainer
from sdpt.detector.grounding_dino.detector import Detector
from sdpt.detector.grounding_dino.loading import DEFAULT_MODEL, FULL_SIZE_RANDOM, TINY_RANDOM, build_tiny_random
from sdpt.detector.glip.loading import GLIP_TINY_RANDOM
from sdpt.detector.prompts import ClassPromptError, split_class_names
from sdpt.detector.grounding_dino.inputs import EncodedBatch, encode_batch
from sdpt.detector.fusion_prompts import FusionPrompts
from sdpt.detector.grounding_dino.fusion import INJECTIONS, FusionPromptInjector, fusion_attention
from sdpt.detector.grounding_dino.prefix_cache import PrefixCache
from sdpt.detector.grounding_dino.checkpointing import activation_checkpointing
from sdpt.detector.grounding_dino.box_features import box_token_features
from sdpt.detector.grounding_dino.loss import detection_loss
from sdpt.detector.detections import Detections
from sdpt.detector.grounding_dino.postprocess import decode_detections

__all__ = [
    "HOSTS", "Host", "GLIP_TINY_RANDOM", "DEFAULT_MODEL", "FULL_SIZE_RANDOM", "TINY_RANDOM", "Detector", "ModelLoadError", "build_tiny_random", "load_detector",
    "pretrainer",
    "ClassPromptError", "EncodedBatch", "encode_batch", "split_class_names",
    "INJECTIONS", "FusionPrompts", "FusionPromptInjector", "fusion_attention",
    "PrefixCache", "activation_checkpointing", "box_token_features", "detection_loss", "Detections", "decode_detections",
]
