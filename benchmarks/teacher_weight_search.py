"""The zero-shot teacher's weight (`TrainConfig.distill_weight`), chosen on validation draws (never the test images).

    python -m benchmarks.teacher_weight_search --results benchmarks/results/teacher_weight_rows.jsonl

The teacher holds the prompted model's scores for classes without training boxes close to the frozen model's. Its
weight of 10 came from a unit-test setting (tests/sdpt/test_unlabelled.py: how far 30 steps move an unlabelled
class's top scores); issue 26 asks for it to be chosen by the same validation protocol as the learning rates.

Protocol: `benchmarks.stop_rule_search`'s. The withheld-classes draws (half of the classes without training boxes)
with draw seeds of their own (100-102, not the test table's 0-2), 3 tasks, 5 and 10 shots. Each draw is tuned with
the default method at its chosen lr and every weight of the grid, exactly as the product tunes (early stopping on
the draw's 20 validation images, routes chosen on them), and scored on **selection images**: 60 images of the task
from a seed of their own, neither pool nor test. The weight with the best mean selection mAP over tasks, shots and
draws wins; while the winner sits at the top of the grid, the grid grows by the next value of its ladder.
`--method` runs the same search for another method (at its chosen lr), its rows logged apart from the default's.
Rows go to a JSON-lines log as they finish; a later run skips what the log already has.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.few_shot import learning_rates, task_pool
from benchmarks.stop_rule_search import add_protocol_arguments, protocol_log, selection_set
from benchmarks.withheld_classes import class_means, draw, withheld_names
from sdpt.config import TrainConfig
from sdpt.detector import load_detector
from sdpt.evaluate import evaluate, evaluate_routes
from sdpt.methods import DEFAULT_METHOD, build_method
from sdpt.routing import choose_routes
from sdpt.train import tune

logger = logging.getLogger("benchmarks.teacher_weight_search")
GRID = [0.0, 1.0, 10.0, 100.0]  # 0 = no teacher; 10 = the default before this search
LADDER = [1000.0]


def measure(detector, task: str, pool, selection, shots: int, seed: int, lr: float, weight: float, steps: int,
            batch: int, fraction: float, method: str = DEFAULT_METHOD) -> dict:
    """One tune of the draw at teacher weight `weight`, as the product tunes; scored on the selection images."""
    withheld = withheld_names(pool.class_names, fraction, seed)
    train, validation = draw(pool, shots, seed, withheld)
    config = TrainConfig(steps=steps, batch_size=batch, seed=seed, lr=lr, distill_weight=weight)
    prompt = build_method(method, detector, seed=seed)
    start = time.perf_counter()
    result = tune(detector, train, prompt, config, validation=validation)
    report = evaluate_routes(detector, validation, prompt)
    prompt.routing = choose_routes(prompt.routing, report["zero-shot"]["per_class"], report["prompted"]["per_class"],
                                   chosen_on="validation images")
    seconds = time.perf_counter() - start
    scored = evaluate(detector, selection, prompt)
    kept = [n for n in selection.class_names if n not in withheld]
    # `variant` (part of the log's key) names a method other than the default, so each method's rows stay apart
    return {"task": task, "method": f"teacher {weight:g}", "variant": "" if method == DEFAULT_METHOD else method,
            "prompt": method, "weight": weight, "shots": shots, "seed": seed, "lr": lr,
            "kept_step": result.best_step, "seconds": seconds, "map": scored["map"],
            "withheld_map": class_means(scored["per_class"], withheld), "kept_map": class_means(scored["per_class"], kept),
            "routes": {name: entry.route for name, entry in prompt.routing.classes.items()}}


def grid_of(rows: list[dict], draws: int) -> list[float]:
    """The grid, grown up its ladder while the best weight measured on every draw is the largest."""
    grid, ladder = list(GRID), list(LADDER)
    while ladder:
        means = weight_means(rows, grid, draws)
        if len(means) < len(grid) or max(means, key=means.get) != grid[-1]:
            break
        grid.append(ladder.pop(0))
    return grid


def weight_means(rows: list[dict], grid: list[float], draws: int) -> dict[float, float]:
    """Mean selection mAP per weight measured on all `draws` draws."""
    means = {}
    for weight in grid:
        scores = [r["map"] for r in rows if r["weight"] == weight]
        if len(scores) == draws:
            means[weight] = statistics.mean(scores)
    return means


def summary(rows: list[dict], grid: list[float]) -> tuple[str, float | None]:
    lines = ["| teacher weight | runs | selection mAP | withheld classes | kept classes | kept step | tune s |",
             "|---|---|---|---|---|---|---|"]
    means = {}
    for weight in grid:
        items = [r for r in rows if r["weight"] == weight]
        if not items:
            continue
        means[weight] = statistics.mean(r["map"] for r in items)
        lines.append(f"| {weight:g} | {len(items)} | {means[weight]:.4f} | "
                     f"{statistics.mean(r['withheld_map'] for r in items):.4f} | "
                     f"{statistics.mean(r['kept_map'] for r in items):.4f} | "
                     f"{statistics.mean(r['kept_step'] for r in items):.0f} | "
                     f"{statistics.mean(r['seconds'] for r in items):.0f} |")
    counts = {weight: sum(r["weight"] == weight for r in rows) for weight in means}
    complete = {w: m for w, m in means.items() if counts[w] == max(counts.values())}
    return "\n".join(lines), max(complete, key=complete.get) if complete else None


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_protocol_arguments(parser)
    parser.add_argument("--weights", type=float, nargs="+", default=None,
                        help="the grid to run (default: GRID, grown up its ladder as the rows ask)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    detector = load_detector(args.model)
    log = protocol_log(args)
    lr = learning_rates(args.lrs).get(args.method)
    variant = "" if args.method == DEFAULT_METHOD else args.method
    draws = len(args.tasks) * len(args.shots) * len(args.seeds)

    def ours() -> list[dict]:
        return [r for r in log.rows.values() if r["task"] in args.tasks and r["shots"] in args.shots
                and r["seed"] in args.seeds and r.get("variant", "") == variant]

    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        pools, selections = {}, {}
        for task in args.tasks:
            pools[task] = task_pool(root, task, args.pool_images)
            selections[task] = selection_set(root, task, args.selection_images)
        done = None
        while done != (grid := args.weights or grid_of(ours(), draws)):
            done = grid
            # draw by draw, every weight on it: a stopped run leaves comparable weights
            for seed in args.seeds:
                for task in args.tasks:
                    for shots in args.shots:
                        for weight in grid:
                            if log.get(task=task, method=f"teacher {weight:g}", shots=shots, seed=seed,
                                       variant=variant) is not None:
                                continue
                            row = measure(detector, task, pools[task], selections[task], shots, seed, lr, weight,
                                          args.steps, args.batch_size, args.withheld, args.method)
                            log.add(row)
                            logger.info("%s", {k: v for k, v in row.items() if k not in ("setting", "routes")})
    text, best = summary(ours(), grid)
    print(text)
    print(f"\nchosen on the selection images: teacher weight {best:g}" if best is not None else "\nno rows yet")
    return ours()


if __name__ == "__main__":
    main()
