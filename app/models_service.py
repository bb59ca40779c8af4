"""The app's detector: loading the chosen model (falling back offline), pre-annotation, and prompt loading."""
from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path

from app.gpu import gpu
from app.settings import DEFAULT_MODEL, SHIPPED_MODEL

logger = logging.getLogger(__name__)


def hub_reachable(timeout_s: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def cached_snapshot(repo_id: str) -> str | None:
    """The local directory of a hub model downloaded earlier, without touching the network."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # not cached (or a malformed id): there is nothing local to use
        return None


def load_with_fallback(requested: str):
    """(detector, note): the requested model, or when it cannot be had, the shipped small model (or a tiny one)."""
    from sdpt.detector import ModelLoadError, load_detector

    is_hub_id = not Path(requested).exists() and "/" in requested and requested not in ("tiny-random",)
    attempts = []
    if is_hub_id and not hub_reachable():
        attempts.append((requested, "the Hugging Face hub cannot be reached"))
        cached = cached_snapshot(requested)
        if cached is not None:  # a model downloaded earlier still works offline
            try:
                return load_detector(cached), f"Model: {requested} (from the local cache; the hub is unreachable)."
            except ModelLoadError as error:
                logger.info("the cached copy of %s did not load: %s", requested, error)
    else:
        try:
            return load_detector(requested), f"Model: {requested}."
        except ModelLoadError as error:
            attempts.append((requested, str(error)))
    why = attempts[-1][1]
    for fallback in (str(SHIPPED_MODEL), "tiny-random"):
        try:
            detector = load_detector(fallback)
        except ModelLoadError as error:
            logger.warning("fallback %s failed: %s", fallback, error)
            continue
        shown = "the shipped small model (assets/sdpt-small)" if fallback != "tiny-random" else \
            "a tiny random model (for trying the app only)"
        note = (f"Model: could not load {requested} ({why}). Using {shown} instead; "
                f"start with --model or SDPT_MODEL to choose another.")
        logger.warning(note)
        return detector, note
    raise ModelLoadError(f"could not load {requested} ({why}) and no fallback model loaded")


class ModelService:
    """One detector for the UI (pre-annotation); a lock keeps prompt attach/detach from overlapping."""

    def __init__(self, requested: str = DEFAULT_MODEL, detector=None, note: str = ""):
        if detector is None:
            detector, note = load_with_fallback(requested)
        self.detector = detector
        self.note = note
        self.lock = threading.Lock()
        self._prompt_cache: dict[str, object] = {}

    @property
    def model_id(self) -> str:
        return self.detector.model_id

    def fingerprint(self) -> str:
        return self.detector.fingerprint()

    def prompt(self, directory: Path):
        from sdpt.prompt_io import CONFIG_NAME, load_prompt

        # the config's modification time is in the key: a route set by hand is read at the next call
        config = Path(directory) / CONFIG_NAME
        key = f"{directory}@{config.stat().st_mtime_ns if config.is_file() else 0}"
        if key not in self._prompt_cache:
            prompt, _config = load_prompt(directory, self.detector)
            self._prompt_cache = {key: prompt}  # the latest prompt is what pre-annotation uses
        return self._prompt_cache[key]

    @gpu(duration=60)
    def detect(self, image_path: Path, class_names: list[str], prompt_dir: Path | None, threshold: float):
        from sdpt.inference import detect

        with self.lock:
            prompt = self.prompt(prompt_dir) if prompt_dir is not None else None
            return detect(self.detector, [image_path], class_names, prompt, threshold=threshold)[0]

    @gpu(duration=120)
    def detect_both(self, images: list, class_names: list[str], prompt_dir: Path, threshold: float,
                    top_k: int = 100):
        """(zero-shot, prompted) detections per image from one call that shares the prompt-independent work."""
        from sdpt.inference import detect_both

        with self.lock:
            return detect_both(self.detector, images, class_names, self.prompt(prompt_dir), threshold=threshold,
                               top_k=top_k)

    @gpu(duration=120)
    def evaluate_routes(self, dataset, prompt_dir: Path) -> dict:
        """Zero-shot, every-class-prompted and routed metrics on `dataset` from one shared detection pass."""
        from sdpt.evaluate import evaluate_routes

        with self.lock:
            return evaluate_routes(self.detector, dataset, self.prompt(prompt_dir))

    @gpu(duration=60)
    def cams(self, image, class_names: list[str], class_index: int, prompt_dir: Path):
        """(zero-shot map, prompted map), each (height, width) in [0, 1]."""
        from sdpt.cam import class_cam

        with self.lock:
            prompt = self.prompt(prompt_dir)
            return (class_cam(self.detector, image, class_names, class_index),
                    class_cam(self.detector, image, class_names, class_index, prompt=prompt))
