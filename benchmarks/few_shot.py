"""Few-shot transfer benchmark: every method on the held-out synthetic tasks, for several shot counts and seeds.

    python -m benchmarks.few_shot --model assets/sdpt-small                  # the full table (long)
    python -m benchmarks.few_shot --model tiny-random --quick                # a smoke run (seconds to minutes)

For each task (sdpt/synthetic/grounding.py: appearance, new_word, many), shots k and seed, a k-shot training set
is drawn from a seeded pool (images are added until every class has at least k boxes) and every method is tuned
on it, then evaluated on separate test images of the task (mAP@[.5:.95] and mAP@.5 by pycocotools) and on
held-out images of the pre-training concepts (forgetting). Trainable parameters, tuning wall time and peak
memory (process RSS above the level before tuning, sampled) are reported too. Prints a markdown table; writes
it and a plot of mAP against shots to --out.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from sdpt.config import TrainConfig
from sdpt.data import FewShotSet, load_coco
from sdpt.detector import load_detector
from sdpt.evaluate import evaluate
from sdpt.methods import build_method
from sdpt.synthetic.grounding import PRETRAIN, TASKS, write_coco

logger = logging.getLogger("benchmarks.few_shot")
METHODS = ["sdpt", "text", "visual", "dual", "upt", "dpt", "full"]


class PeakMemory:
    """Peak resident memory of this process above its level at start, sampled every 20 ms (CPU runs)."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    @property
    def megabytes(self) -> float:
        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**20
        return (self.peak - self.base) / 2**20


def k_shot(pool: FewShotSet, shots: int, seed: int) -> FewShotSet:
    """Images from the pool, in a seeded order, until every class has at least `shots` boxes."""
    order = list(range(len(pool.samples)))
    random.Random(seed).shuffle(order)
    counts = [0] * len(pool.class_names)
    chosen = []
    for index in order:
        if min(counts) >= shots:
            break
        sample = pool.samples[index]
        if any(counts[c] < shots for c in sample.classes.tolist()):
            chosen.append(sample)
            for c in sample.classes.tolist():
                counts[c] += 1
    return FewShotSet(pool.class_names, chosen)


def run(args) -> list[dict]:
    detector = load_detector(args.model)
    rows = []
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        pretrain_test = load_coco(write_coco(root / "pretrain", PRETRAIN, args.test_images, 20_000), root / "pretrain/images")
        for task in args.tasks:
            style = TASKS[task]
            pool = load_coco(write_coco(root / task / "pool", style, args.pool_images, 30_000), root / task / "pool/images")
            test = load_coco(write_coco(root / task / "test", style, args.test_images, 40_000), root / task / "test/images")
            zero = evaluate(detector, test)
            rows.append({"task": task, "method": "zero-shot", "shots": 0, "seed": 0, "map": zero["map"],
                         "map50": zero["map50"], "trainable": 0, "percent": 0.0, "seconds": 0.0, "memory_mb": 0.0,
                         "forgetting_map50": evaluate(detector, pretrain_test)["map50"]})
            for shots in args.shots:
                for seed in args.seeds:
                    train = k_shot(pool, shots, seed)
                    for method in args.methods:
                        prompt = build_method(method, detector, seed=seed)
                        config = TrainConfig(steps=args.steps, batch_size=args.batch_size, seed=seed)
                        if method == "full":
                            config.lr = args.full_lr
                        with PeakMemory() as memory:
                            start = time.perf_counter()
                            from sdpt.train import tune

                            tune(detector, train, prompt, config)
                            seconds = time.perf_counter() - start
                        result = evaluate(detector, test, prompt)
                        row = {"task": task, "method": method, "shots": shots, "seed": seed, "map": result["map"],
                               "map50": result["map50"], "trainable": prompt.trainable_parameters(),
                               "percent": 100 * prompt.trainable_fraction(), "seconds": seconds,
                               "memory_mb": memory.megabytes,
                               "forgetting_map50": evaluate(detector, pretrain_test, prompt)["map50"]}
                        rows.append(row)
                        logger.info("%s", row)
                        del prompt
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| task | method | shots | mAP | mAP50 | pre-training mAP50 after | trainable | % | tune s | peak MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["method"], row["shots"]), []).append(row)

    def stat(items, key, digits=3):
        values = [r[key] for r in items]
        mean = statistics.mean(values)
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{mean:.{digits}f} ± {spread:.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"

    for (task, method, shots), items in groups.items():
        lines.append(f"| {task} | {method} | {shots} | {stat(items, 'map')} | {stat(items, 'map50')} | "
                     f"{stat(items, 'forgetting_map50')} | {items[0]['trainable']:,} | {items[0]['percent']:.4f} | "
                     f"{stat(items, 'seconds', 1)} | {stat(items, 'memory_mb', 0)} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in rows})
    figure, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for axis, task in zip(axes[0], tasks):
        zero = [r["map"] for r in rows if r["task"] == task and r["method"] == "zero-shot"]
        for method in [m for m in METHODS if any(r["method"] == m and r["task"] == task for r in rows)]:
            shots = sorted({r["shots"] for r in rows if r["task"] == task and r["method"] == method})
            means = [statistics.mean(r["map"] for r in rows if r["task"] == task and r["method"] == method
                                     and r["shots"] == k) for k in shots]
            axis.plot(shots, means, marker="o", label=method)
        if zero:
            axis.axhline(zero[0], color="grey", linestyle="--", label="zero-shot")
        axis.set_title(task)
        axis.set_xlabel("shots")
        axis.set_ylabel("mAP@[.5:.95]")
    axes[0][-1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="assets/sdpt-small")
    parser.add_argument("--quick", action="store_true", help="one task, 1 shot, 1 seed, 3 methods, few steps")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--full-lr", type=float, default=1e-4, help="learning rate of full fine-tuning")
    parser.add_argument("--pool-images", type=int, default=80)
    parser.add_argument("--test-images", type=int, default=60)
    parser.add_argument("--out", type=Path, default=None, help="directory for table.md and map_vs_shots.png")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.shots, args.seeds = args.tasks[:1], [1], [0]
        args.methods = [m for m in args.methods if m in ("sdpt", "text", "full")]
        args.steps, args.pool_images, args.test_images = 3, 12, 4
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = run(args)
    text = table(rows)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "table.md").write_text(text + "\n")
        plot(rows, args.out / "map_vs_shots.png")
    return rows


if __name__ == "__main__":
    main()
