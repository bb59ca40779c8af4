"""Performance on the full-size GLIP-T architecture (random weights, CPU, 800 px): what prompting costs on the
paper's own host.

    python -m benchmarks.glip_performance --threads 2 --json benchmarks/results/glip_performance.json

- detection: the default prompt (SDPT, branch injection, every class prompted) against the zero-shot model, the
  two interleaved on the same images (target <= 1.05x);
- tuning: one SDPT step against one full fine-tuning step, batch 1, interleaved (target <= 0.6x), and each side's
  peak memory in a fresh child process (CPU: peak RSS above the loaded model; target <= 0.6x);
- the prefix cache (`sdpt/detector/glip/prefix_cache.py`: the Swin, the FPN and BERT run once per batch and are
  replayed on later steps): SDPT steps are timed with it (the default) and without it, in the same rounds.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import statistics
import tempfile
from pathlib import Path

import torch

from benchmarks.timing import interleaved, interleaved_all, median_ratio, peak_rss_bytes, reset_peak_rss, rss_bytes

logger = logging.getLogger("benchmarks.glip_performance")
CLASSES = ["red square", "blue circle", "green triangle"]


def setup(model: str, side: int, images: int):
    from sdpt.data import load_coco
    from sdpt.detector import load_detector
    from sdpt.synthetic import make_shapes_dataset

    detector = load_detector(model, device="cpu")
    detector.config.min_size = detector.config.max_size = side  # GLIP's test resize: the side at `side` px
    root = tempfile.mkdtemp(prefix="sdpt-glip-perf-")
    dataset = load_coco(make_shapes_dataset(root, num_images=images, classes=CLASSES, size_range=(side, side),
                                            seed=0), f"{root}/images")
    return detector, dataset


def step_times(detector, dataset, method: str, steps: int, cache: bool = True) -> list[float]:
    """Seconds of each tuning step but the first (which fills the prefix cache where there is one)."""
    from sdpt.config import TrainConfig
    from sdpt.methods import build_method
    from sdpt.train import tune

    prompt = build_method(method, detector, seed=0)
    result = tune(detector, dataset, prompt, TrainConfig(steps=steps, batch_size=1, distill_weight=0.0, cache=cache))
    ends = [h.elapsed_s for h in result.history]
    times = [b - a for a, b in zip([0.0] + ends[:-1], ends)]
    return times[1:] if len(times) > 1 else times


def _memory_child(model: str, side: int, method: str, steps: int, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    detector, dataset = setup(model, side, images=1)
    reset_peak_rss()
    base = rss_bytes()
    step_times(detector, dataset, method, steps)
    queue.put(peak_rss_bytes() - base)


def peak_memory(model: str, side: int, method: str, steps: int, threads: int) -> int:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_memory_child, args=(model, side, method, steps, threads, queue))
    child.start()
    value = queue.get(timeout=3600)
    child.join()
    return value


def trained_like(detector):
    from sdpt.methods import build_method

    prompt = build_method("sdpt", detector, seed=1)
    with torch.no_grad():
        for param in prompt.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    return prompt.eval()


def run(args) -> dict:
    from sdpt.data import FewShotSet
    from sdpt.inference import detect

    torch.set_num_threads(args.threads)
    detector, dataset = setup(args.model, args.image_size, args.images)
    images = [s.path for s in dataset.samples]
    prompt = trained_like(detector)
    zero_times, prompted_times = interleaved(
        lambda: detect(detector, images, dataset.class_names, None, batch_size=1) and None,
        lambda: detect(detector, images, dataset.class_names, prompt, batch_size=1) and None, args.repeats)
    result = {
        "model": args.model, "parameters": detector.parameter_count(), "image_side": args.image_size,
        "threads": args.threads, "repeats": args.repeats, "images": args.images,
        "zero_shot_detect_s": statistics.median(zero_times), "prompted_detect_s": statistics.median(prompted_times),
        "detect_ratio": median_ratio(prompted_times, zero_times), "sdpt_trainable": prompt.trainable_parameters(),
    }
    if args.detect_only:
        return result
    one = FewShotSet(dataset.class_names, dataset.samples[:1])
    sdpt_times, uncached_times, full_times = interleaved_all(
        [lambda: statistics.median(step_times(detector, one, "sdpt", args.steps)),
         lambda: statistics.median(step_times(detector, one, "sdpt", args.steps, cache=False)),
         lambda: statistics.median(step_times(detector, one, "full", args.steps))], args.repeats)
    sdpt_memory = peak_memory(args.model, args.image_size, "sdpt", 2, args.threads)
    full_memory = peak_memory(args.model, args.image_size, "full", 2, args.threads)
    return {
        **result,
        "sdpt_step_s": statistics.median(sdpt_times), "full_step_s": statistics.median(full_times),
        "step_ratio": median_ratio(sdpt_times, full_times),
        "sdpt_uncached_step_s": statistics.median(uncached_times),
        "uncached_step_ratio": median_ratio(uncached_times, full_times),
        "sdpt_peak_mb": sdpt_memory / 2**20, "full_peak_mb": full_memory / 2**20,
        "memory_ratio": sdpt_memory / full_memory,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="glip-t-random")
    parser.add_argument("--image-size", type=int, default=800)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="tuning steps per timing (the first is dropped)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--detect-only", action="store_true", help="time detection only (minutes, not half an hour)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
