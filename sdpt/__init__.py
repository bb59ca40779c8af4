"""SDPT: prompt tuning of fusion-based open-vocabulary detectors (Grounding DINO in transformers).

Quick use:
    detector = load_detector("IDEA-Research/grounding-dino-tiny")   # or a local directory, or "tiny-random"
    prompt = build_method("sdpt", detector)
    tune(detector, load_coco("train.json", "images/"), prompt)
    detect(detector, ["photo.jpg"], ["cell", "debris"], prompt)
"""
from sdpt.config import SDPTConfig, TrainConfig
from sdpt.data import FewShotSet, load_coco, load_image
from sdpt.detector import Detector, load_detector
from sdpt.evaluate import evaluate
from sdpt.inference import detect, detect_both
from sdpt.methods import METHODS, build_method
from sdpt.prompt_io import load_prompt, save_prompt
from sdpt.train import tune

__all__ = [
    "SDPTConfig", "TrainConfig", "FewShotSet", "load_coco", "load_image", "Detector", "load_detector", "evaluate",
    "detect", "detect_both", "METHODS", "build_method", "load_prompt", "save_prompt", "tune",
]
