"""The default method's gain on a fixed `new_word` few-shot set of the shipped small model, over seeds: the margin
that the quality test (tests/sdpt/test_quality.py) holds the default method to.

    python -m benchmarks.quality_margin --seeds 0 1 2 3 4

For each seed the training draw and the prompt's init change; the test images stay fixed. The margin printed is the
mean gain minus 3 sample standard deviations: a working method clears it on the test's seed with room to spare, and
a method that stops working (gain near 0) fails it.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
from pathlib import Path

from sdpt.methods import DEFAULT_METHOD

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "assets" / "sdpt-small"
# The protocol, small enough for CI on 2 cores: 5 shots of `new_word`, 120 steps of batch 4, 30 test images.
TASK, SHOTS, STEPS, BATCH, POOL_IMAGES, TEST_IMAGES = "new_word", 5, 120, 4, 40, 30

logger = logging.getLogger("benchmarks.quality_margin")


def default_gain(detector, root: Path, seed: int, options: dict | None = None) -> tuple[float, float]:
    """(zero-shot mAP, mAP after tuning the default method with its default settings, or `options`) on the fixed
    test images."""
    from benchmarks.few_shot import k_shot
    from sdpt.config import TrainConfig
    from sdpt.data import load_coco
    from sdpt.evaluate import evaluate
    from sdpt.methods import build_method
    from sdpt.synthetic.grounding import TASKS, write_coco
    from sdpt.train import tune

    style = TASKS[TASK]
    if not (root / "test").exists():
        write_coco(root / "pool", style, POOL_IMAGES, 30_000)
        write_coco(root / "test", style, TEST_IMAGES, 40_000)
    pool = load_coco(root / "pool" / "annotations.json", root / "pool" / "images")
    test = load_coco(root / "test" / "annotations.json", root / "test" / "images")
    train = k_shot(pool, SHOTS, seed)
    prompt = build_method(DEFAULT_METHOD, detector, options, seed=seed)
    tune(detector, train, prompt, TrainConfig(steps=STEPS, batch_size=BATCH, seed=seed))
    return evaluate(detector, test)["map"], evaluate(detector, test, prompt)["map"]


def main(argv: list[str] | None = None) -> float:
    from sdpt.detector import load_detector

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--injection", default=None, help="another fusion injection (e.g. shared_gate), to check that "
                                                          "a method that does not work falls below the margin")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    detector = load_detector(str(MODEL), device="cpu")
    gains = []
    with tempfile.TemporaryDirectory() as root:
        for seed in args.seeds:
            options = {"injection": args.injection} if args.injection else None
            zero, tuned = default_gain(detector, Path(root), seed, options)
            gains.append(tuned - zero)
            logger.info("seed %d: zero-shot %.4f, %s %.4f, gain %.4f", seed, zero, DEFAULT_METHOD, tuned, gains[-1])
    spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
    margin = statistics.mean(gains) - 3 * spread
    print(f"{DEFAULT_METHOD} gain over {len(gains)} seeds: mean {statistics.mean(gains):.4f}, sd {spread:.4f}, "
          f"min {min(gains):.4f}; margin (mean - 3 sd) {margin:.4f}")
    return margin


if __name__ == "__main__":
    main()
