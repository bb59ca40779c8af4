"""SDPT step time with and without the prefix cache, and trainable-parameter shares, on a chosen model size.

    python -m benchmarks.prefix_cache --model full-size-random --image-size 800 --steps 4

The first step of a cached run fills the cache; the figure reported is the median of the steps after it.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import tempfile

import torch

from sdpt.config import TrainConfig
from sdpt.data import load_coco
from sdpt.detector import load_detector
from sdpt.methods import build_method
from sdpt.synthetic import make_shapes_dataset
from sdpt.train import tune

logger = logging.getLogger("benchmarks.prefix_cache")


def step_times(detector, dataset, options: dict, steps: int, cache: bool) -> list[float]:
    prompt = build_method("sdpt", detector, options)
    result = tune(detector, dataset, prompt, TrainConfig(steps=steps, batch_size=1, cache=cache))
    ends = [h.elapsed_s for h in result.history]
    return [b - a for a, b in zip([0.0] + ends[:-1], ends)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="full-size-random")
    parser.add_argument("--image-size", type=int, default=800, help="square synthetic image side, pixels")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    detector = load_detector(args.model)
    side = args.image_size
    with tempfile.TemporaryDirectory() as root:
        annotations = make_shapes_dataset(root, num_images=1, size_range=(side, side), seed=0)
        dataset = load_coco(annotations, f"{root}/images")
        detector.image_processor.size = {"shortest_edge": side, "longest_edge": side}
        total = detector.parameter_count()
        rows = []
        for label, options in (("all fusion layers (default)", {}), ("last fusion layer", {"layers": [-1]})):
            prompt = build_method("sdpt", detector, options)
            trainable = prompt.trainable_parameters()
            plain = step_times(detector, dataset, options, args.steps, cache=False)
            cached = step_times(detector, dataset, options, args.steps, cache=True)
            plain_s, cached_s = statistics.median(plain), statistics.median(cached[1:] or cached)
            rows.append((label, trainable, 100 * trainable / total, plain_s, cached_s, plain_s / cached_s))
    device = torch.cuda.get_device_name() if detector.device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"\nmodel {args.model}: {total:,} parameters; image {side}x{side}; batch 1; {device}")
    print("| prompted layers | trainable | % of model | step, no cache (s) | step, cached (s) | speed-up |")
    print("|---|---|---|---|---|---|")
    for label, trainable, share, plain_s, cached_s, ratio in rows:
        print(f"| {label} | {trainable:,} | {share:.4f}% | {plain_s:.2f} | {cached_s:.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
