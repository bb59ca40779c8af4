"""Seconds per CAM heat-map (zero-shot and prompted) on the full-size architecture, with the method and layer used.

    python -m benchmarks.cam_timing [--model full-size-random] [--image-size 800] [--repeats 3]
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time

import torch

from benchmarks.performance import setup, trained_like_prompt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="full-size-random")
    parser.add_argument("--image-size", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    from sdpt.cam import class_cam, describe_cam
    from sdpt.detector.loading import Detector  # noqa: F401  (import check only)

    detector, dataset = setup(args.model, args.image_size, images=1)
    prompt = trained_like_prompt(detector)
    image, names = dataset.samples[0].path, dataset.class_names
    class_cam(detector, image, names, 0)  # warm-up
    rows = {}
    for label, used in (("zero-shot", None), ("prompted", prompt)):
        times = []
        for k in range(args.repeats):
            start = time.perf_counter()
            class_cam(detector, image, names, k % len(names), prompt=used)
            times.append(time.perf_counter() - start)
        rows[label] = statistics.median(times)
    device = torch.cuda.get_device_name() if detector.device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"model {args.model}, {args.image_size}x{args.image_size}, {device}, torch {torch.__version__}")
    print(f"method: {describe_cam()}")
    for label, seconds in rows.items():
        print(f"| CAM, {label} | {seconds:.2f} s per map |")


if __name__ == "__main__":
    main()
