"""The only package that knows Grounding DINO's internals (transformers' GroundingDino / MMGroundingDino).

Everything else in `sdpt` talks to a `Detector` and to the small functions exported here:
loading, class-prompt encoding, fusion-layer prompt injection, the prompt-independent prefix cache,
the detection loss and box post-processing.
"""
from sdpt.detector.loading import DEFAULT_MODEL, FULL_SIZE_RANDOM, TINY_RANDOM, Detector, ModelLoadError, build_tiny_random, load_detector
from sdpt.detector.prompts import ClassPromptError, EncodedBatch, encode_batch, split_class_names
from sdpt.detector.fusion import INJECTIONS, FusionPrompts, FusionPromptInjector, fusion_attention
from sdpt.detector.prefix_cache import PrefixCache
from sdpt.detector.checkpointing import activation_checkpointing
from sdpt.detector.box_features import box_token_features
from sdpt.detector.loss import detection_loss
from sdpt.detector.postprocess import Detections, decode_detections

__all__ = [
    "DEFAULT_MODEL", "FULL_SIZE_RANDOM", "TINY_RANDOM", "Detector", "ModelLoadError", "build_tiny_random", "load_detector",
    "ClassPromptError", "EncodedBatch", "encode_batch", "split_class_names",
    "INJECTIONS", "FusionPrompts", "FusionPromptInjector", "fusion_attention",
    "PrefixCache", "activation_checkpointing", "box_token_features", "detection_loss", "Detections", "decode_detections",
]
