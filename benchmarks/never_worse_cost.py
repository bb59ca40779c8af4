"""What never-worse costs: a tuning step with the cached zero-shot teacher against the step before it, and detection
with a routing (every class prompted; mixed) against the prompt without one and against zero-shot.

    python -m benchmarks.never_worse_cost [--model assets/sdpt-small] [--rounds 5] [--threads 2]

On the `many` task (30 classes), a 10-shot draw with half the classes withheld (no training box), the default
method. Step time: rounds of N steps each, the two settings interleaved so that machine load hits both alike; the
teacher's one-off forward passes are reported apart. Detection: the same images with the prompt unrouted, routed with
every class prompted, routed with half the classes to zero-shot, and zero-shot alone, interleaved. Prints ratios.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch

logger = logging.getLogger("benchmarks.never_worse_cost")


def _step_seconds(detector, train, config, steps: int) -> tuple[float, float]:
    """(mean seconds per step after the first, seconds spent before the first step)."""
    from sdpt.methods import DEFAULT_METHOD, build_method
    from sdpt.train import tune

    marks = []
    began = time.perf_counter()
    tune(detector, train, build_method(DEFAULT_METHOD, detector, seed=0), config,
         on_step=lambda info: marks.append(time.perf_counter()))
    setup = marks[0] - began
    return (marks[-1] - marks[0]) / (len(marks) - 1), setup


def main(argv: list[str] | None = None) -> dict:
    from benchmarks.few_shot import task_pool
    from benchmarks.withheld_classes import draw, withheld_names
    from sdpt.config import TrainConfig
    from sdpt.detector import load_detector
    from sdpt.inference import detect_many
    from sdpt.methods import DEFAULT_METHOD, build_method
    from sdpt.routing import by_box_count
    from sdpt.train import tune

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="assets/sdpt-small")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    detector = load_detector(args.model, device="cpu")
    with tempfile.TemporaryDirectory() as root:
        pool = task_pool(Path(root), "many", 80)
        withheld = withheld_names(pool.class_names, 0.5, 0)
        train, validation = draw(pool, 10, 0, withheld)
        before = TrainConfig(steps=args.steps, batch_size=4, unlabelled_negatives=True, distill_weight=0.0)
        now = TrainConfig(steps=args.steps, batch_size=4)
        steps = {"before": [], "now": []}
        setups = {"before": [], "now": []}
        for _ in range(args.rounds):
            for name, config in (("before", before), ("now", now)):
                step, setup = _step_seconds(detector, train, config, args.steps)
                steps[name].append(step)
                setups[name].append(setup)
        prompt = build_method(DEFAULT_METHOD, detector, seed=0)
        tune(detector, train, prompt, TrainConfig(steps=5, batch_size=4))
        images = [s.path for s in validation.samples[:8]]
        names = pool.class_names
        routings = {"unrouted": None, "routed, every class prompted": by_box_count(names, [1] * len(names)),
                    "routed, half to zero-shot": by_box_count(names, [0 if n in withheld else 1 for n in names])}
        times = {name: [] for name in [*routings, "zero-shot"]}
        for _ in range(args.rounds):
            for name, routing in routings.items():
                prompt.routing = routing
                start = time.perf_counter()
                detect_many(detector, images, names, [prompt], threshold=0.0, top_k=100, batch_size=4)
                times[name].append(time.perf_counter() - start)
            start = time.perf_counter()
            detect_many(detector, images, names, [None], threshold=0.0, top_k=100, batch_size=4)
            times["zero-shot"].append(time.perf_counter() - start)
    step_before, step_now = statistics.median(steps["before"]), statistics.median(steps["now"])
    detect = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "step_s": {"before": step_before, "now": step_now, "ratio": step_now / step_before},
        "setup_s": {name: statistics.median(values) for name, values in setups.items()},
        "detect_s": detect,
        "every_class_prompted_vs_unrouted": detect["routed, every class prompted"] / detect["unrouted"],
        "mixed_vs_zero_shot": detect["routed, half to zero-shot"] / detect["zero-shot"],
        "unrouted_vs_zero_shot": detect["unrouted"] / detect["zero-shot"],
        "rounds": args.rounds, "threads": args.threads, "train_images": len(train), "withheld": len(withheld),
    }
    print(f"tuning step (median of {args.rounds} rounds of {args.steps} steps, {len(train)} images, "
          f"{len(withheld)} of {len(names)} classes without boxes): before {step_before:.3f} s, now {step_now:.3f} s, "
          f"ratio {step_now / step_before:.3f}; before the first step: before {result['setup_s']['before']:.2f} s, "
          f"now {result['setup_s']['now']:.2f} s (the teacher's one-off forward passes)")
    print(f"detection, {len(images)} images, {len(names)} classes: " + ", ".join(
        f"{name} {value:.3f} s" for name, value in detect.items()))
    print(f"every class prompted / unrouted {result['every_class_prompted_vs_unrouted']:.3f}; mixed / zero-shot "
          f"{result['mixed_vs_zero_shot']:.3f} (unrouted / zero-shot {result['unrouted_vs_zero_shot']:.3f})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
