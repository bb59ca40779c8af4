"""Each method's learning rate, chosen on validation images drawn from the k-shot pool (never the test images).

    python -m benchmarks.lr_search --model assets/sdpt-small --results benchmarks/results/lr_search_rows.jsonl \
        --out benchmarks/results [--max-minutes N]
    python -m benchmarks.lr_search --model tiny-random --quick             # a smoke run

Protocol: for each task, the seed-0 draw of `--shots` shots is the training set (the same draw the few-shot table
uses), and `--val-images` other images of the task's pool are the validation set. Every method is tuned at every
learning rate of its grid with the few-shot table's protocol (steps, batch size) and scored by validation mAP.
One learning rate per method, across tasks: the one with the best mean validation mAP over the tasks. The choice
goes to `lr_choice.json`, which `benchmarks.few_shot` reads, and becomes the method's `default_lr`.
SDPT's other injections (`sdpt:paper`, `sdpt:shared_gate`) are searched after the methods, as entries of their own;
`benchmarks.sdpt_ablation` tunes its injection variants at those rates where the file has them.
Rows go to a JSON-lines log as they finish; a later run skips what the log already has.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.entries import INJECTIONS, entry_method
from benchmarks.few_shot import ResultsLog, add_protocol_arguments, k_shot, model_fingerprint, quick_protocol, task_pool
from sdpt.config import TrainConfig
from sdpt.data import FewShotSet
from sdpt.detector import load_detector
from sdpt.evaluate import evaluate
from sdpt.methods import build_method
from sdpt.synthetic.grounding import TASKS

logger = logging.getLogger("benchmarks.lr_search")

# The issue suggested {5e-3, 2e-2, 5e-2} for prompts and {1e-5, 3e-5, 1e-4} for full fine-tuning. A best value at
# an edge of a grid says the search has not bracketed the optimum, so the rule is: while a method's best mean sits at
# the top (bottom) of its grid, the grid grows by the next value of its ladder up (down), and the new value is run on
# every task. The prompt grid below already holds two such steps (SDPT was best at 5e-2, then at 1e-1), given to every
# prompt method.
PROMPT_GRID = [5e-3, 2e-2, 5e-2, 1e-1, 2e-1]
BASE_GRIDS = {"full": [1e-5, 3e-5, 1e-4], "fusion": [1e-4, 3e-4, 1e-3]}  # methods that tune pre-trained weights
LADDERS = {"full": [3e-4, 1e-3], "fusion": [3e-3, 1e-2]}
LADDERS_DOWN = {"full": [3e-6, 1e-6], "fusion": [3e-5, 1e-5]}
PROMPT_LADDER = [5e-1, 1.0]
PROMPT_LADDER_DOWN = [1e-3, 2e-4]
# The order runs are done in: the default method and its strongest rivals first, so a stopped run has those.
METHOD_ORDER = ["sdpt", "text", "full", "fusion", "dual", "visual", "upt", "dpt"]
# SDPT's other injections (entries.INJECTIONS) are searched like methods of their own, after the methods.
ENTRIES = METHOD_ORDER + list(INJECTIONS)


def injection_entry(method: str, options: dict) -> str | None:
    """The lr_choice.json entry of an SDPT injection other than the default, where `options` name one."""
    entry = f"sdpt:{options.get('injection')}"
    return entry if method == "sdpt" and entry in INJECTIONS else None


def build_entry(entry: str, detector, seed: int = 0):
    """The prompt an entry of the search names: a method at its defaults, or SDPT with another injection."""
    method, options = entry_method(entry)
    return build_method(method, detector, options, seed=seed)


def mean_scores(rows: list[dict], method: str, grid: list[float], tasks: list[str]) -> dict[float, float]:
    """Mean validation mAP over `tasks` per learning rate of `grid` measured on every task."""
    means = {}
    for lr in grid:
        scores = [r["val_map"] for r in rows if r["method"] == method and r["lr"] == lr and r["task"] in tasks]
        if len(scores) == len(tasks):
            means[lr] = statistics.mean(scores)
    return means


def grid_of(method: str, rows: list[dict] = (), tasks: list[str] = ()) -> list[float]:
    """The method's grid (ascending), grown along its ladders while its best measured mean sits at an edge."""
    grid = list(BASE_GRIDS.get(method, PROMPT_GRID))
    up = list(LADDERS.get(method, PROMPT_LADDER))
    down = list(LADDERS_DOWN.get(method, PROMPT_LADDER_DOWN))
    while tasks:
        means = mean_scores(list(rows), method, grid, list(tasks))
        if len(means) < len(grid):
            break
        best = max(means, key=means.get)
        if best == grid[-1] and up:
            grid.append(up.pop(0))
        elif best == grid[0] and down:
            grid.insert(0, down.pop(0))
        else:
            break
    return grid


def validation_split(pool: FewShotSet, train: FewShotSet, count: int, seed: int) -> FewShotSet:
    """`count` pool images that are not in the training draw, in a seeded order."""
    used = {sample.path for sample in train.samples}
    rest = [sample for sample in pool.samples if sample.path not in used]
    if not rest:
        raise ValueError(f"the {len(train)}-image training draw takes the whole {len(pool)}-image pool: no image is "
                         f"left to validate on; raise --pool-images")
    random.Random(seed + 7919).shuffle(rest)
    return FewShotSet(pool.class_names, rest[:count])


def tune_and_validate(detector, train: FewShotSet, validation: FewShotSet, prompt, config: TrainConfig) -> dict:
    """Tune `prompt` on `train`, score it on `validation`: the part of a row that every validation search shares."""
    from sdpt.train import tune

    start = time.perf_counter()
    tune(detector, train, prompt, config)
    seconds = time.perf_counter() - start
    result = evaluate(detector, validation, prompt)
    return {"val_map": result["map"], "val_map50": result["map50"], "seconds": seconds}


def setting_of(args) -> dict:
    return {"model": model_fingerprint(args.model), "steps": args.steps, "batch_size": args.batch_size,
            "pool_images": args.pool_images, "val_images": args.val_images, "shots": args.shots, "lr_search": 2}


def run(args) -> list[dict]:
    detector = load_detector(args.model)
    log = ResultsLog(args.results, setting_of(args))
    deadline = time.monotonic() + 60 * args.max_minutes if args.max_minutes is not None else None
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        splits = {}
        for task in args.tasks:
            # The same pool (seed offset) as benchmarks.few_shot, so the training draw is the table's seed-0 draw.
            pool = task_pool(root, task, args.pool_images)
            train = k_shot(pool, args.shots, 0)
            splits[task] = train, validation_split(pool, train, args.val_images, 0)
            logger.info("%s: %d training images, %d validation images", task, len(train), len(splits[task][1]))
        for method in args.methods:
            done: list[float] = []
            while (pending := [lr for lr in grid_of(method, list(log.rows.values()), args.tasks) if lr not in done]):
                lr = pending[0]
                done.append(lr)
                for task in args.tasks:
                    if log.get(task=task, method=method, shots=args.shots, seed=0, variant=f"lr={lr:g}"):
                        continue
                    if deadline is not None and time.monotonic() > deadline:
                        logger.info("time budget of %s minutes spent; run again to go on", args.max_minutes)
                        return list(log.rows.values())
                    train, validation = splits[task]
                    prompt = build_entry(method, detector, seed=0)
                    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=lr)
                    row = log.add({"task": task, "method": method, "shots": args.shots, "seed": 0,
                                   "variant": f"lr={lr:g}", "lr": lr,
                                   **tune_and_validate(detector, train, validation, prompt, config)})
                    logger.info("%s", {k: v for k, v in row.items() if k != "setting"})
    return list(log.rows.values())


def choose(rows: list[dict], tasks: list[str]) -> dict[str, float]:
    """Per method, the learning rate with the best mean validation mAP over `tasks` (only fully measured ones)."""
    chosen = {}
    for method in ENTRIES:
        grid = grid_of(method, rows, tasks)
        means = mean_scores(rows, method, grid, tasks)
        if means and len(means) == len(grid):
            chosen[method] = max(means, key=means.get)
    return chosen


def table(rows: list[dict], tasks: list[str], chosen: dict[str, float]) -> str:
    lines = ["| method | lr | " + " | ".join(f"{t} val mAP" for t in tasks) + " | mean | chosen |",
             "|---|---|" + "---|" * len(tasks) + "---|---|"]
    for method in ENTRIES:
        for lr in grid_of(method, rows, tasks):
            cells = []
            for task in tasks:
                found = [r["val_map"] for r in rows if r["method"] == method and r["lr"] == lr and r["task"] == task]
                cells.append(f"{found[0]:.3f}" if found else "-")
            if all(c == "-" for c in cells):
                continue
            done = [float(c) for c in cells if c != "-"]
            mean = f"{statistics.mean(done):.3f}" if len(done) == len(tasks) else "-"
            mark = "**yes**" if chosen.get(method) == lr else ""
            lines.append(f"| {method} | {lr:g} | " + " | ".join(cells) + f" | {mean} | {mark} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one task, two methods, few steps and images")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--methods", nargs="+", default=ENTRIES, choices=ENTRIES,
                        help="methods, and SDPT's other injections (sdpt:paper, sdpt:shared_gate), in this order")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--val-images", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="directory for lr_search.md and lr_choice.json")
    add_protocol_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.methods, args.shots, args.val_images = args.tasks[:1], ["sdpt", "text"], 1, 2
        quick_protocol(args)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = run(args)
    chosen = choose(rows, args.tasks)
    text = table(rows, args.tasks, chosen)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "lr_search.md").write_text(text + "\n")
        (args.out / "lr_choice.json").write_text(json.dumps(chosen, indent=2) + "\n")
    return chosen


if __name__ == "__main__":
    main()
