"""Withheld classes: does tuning keep what the zero-shot model knew about classes nobody has labelled yet?

    python -m benchmarks.withheld_classes --results benchmarks/results/withheld_rows.jsonl --out benchmarks/results
    python -m benchmarks.withheld_classes --withheld 0 ...   # every class labelled: the few-shot table's draws

For each task, shot count and seed, half of the task's classes (seeded) get no training box: the k-shot draw covers
the kept classes (images are added until each kept class has k boxes), and the withheld classes' boxes are removed
from the drawn images, as in a first labelling round where they are project classes with no box yet. Each variant
tunes the default method at its chosen lr on the same draw and is scored on the task's test images: mAP over the
withheld classes and over the kept classes apart (mean of per-class COCO AP), overall mAP, and the pre-training
concepts' mAP@.5.

Variants:
- `today`: the loss before 2026-12-02 (every class without a box is a negative), the full schedule, every class
  prompted;
- `never-worse`: the defaults now (no negative signal for classes without boxes, routing by training boxes, the
  zero-shot teacher off), early stopping on validation images (the best step), and routes chosen on those validation
  images;
- options of `never-worse`, joined to its name with ", " in any combination: `margin 0.02` (early stopping keeps the
  latest step within 0.02 of the best: the default from 2026-12-02 to 12-06, until `benchmarks.stop_rule_search`
  chose the best step on validation draws), `full schedule` (no early stopping: the last step is kept), `box routes`
  (routes by training boxes only, none chosen on validation images) and `teacher 10` (the cached zero-shot teacher at
  weight 10: the default from 2026-12-02 to 12-07, until `benchmarks.teacher_weight_search` chose 0 on validation
  draws).

Rows logged under older names were renamed when a default changed, to what they measured. On 2026-12-06:
`never-worse` (then the margin rule) -> `never-worse, margin 0.02`, `never-worse, best step` -> `never-worse`,
`never-worse, best step, box routes` -> `never-worse, box routes`. On 2026-12-07 every `never-worse` row measured
until then (the teacher at 10) gained `, teacher 10`.
Validation images are 20 pool images outside the draw; test images are never used to choose anything.

`--methods` runs the variants for other prompt methods than the default (each at its own chosen lr): routing,
the teacher and early stopping live in the training and inference code, so they apply to every method. Rows of a
method other than the default carry its name in `prompt` (and in the results log's key).
"""
from __future__ import annotations

import argparse
import copy
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.few_shot import (LR_CHOICE, PRETRAIN, ResultsLog, TASKS, TaskData, learning_rates, load_coco,
                                 model_fingerprint, write_coco)
from sdpt.config import TrainConfig
from sdpt.data import FewShotSet
from sdpt.detector import load_detector
from sdpt.evaluate import evaluate, evaluate_routes
from sdpt.methods import DEFAULT_METHOD, METHODS, build_method
from sdpt.routing import choose_routes
from sdpt.train import tune

logger = logging.getLogger("benchmarks.withheld_classes")
NEVER_WORSE = "never-worse"
OPTIONS = ["margin 0.02", "full schedule", "box routes", "teacher 10"]
# the order of the tables' rows; any other combination of OPTIONS also runs, and sorts after these
VARIANTS = ["today", NEVER_WORSE, "never-worse, teacher 10", "never-worse, margin 0.02, teacher 10",
            "never-worse, full schedule, teacher 10", "never-worse, box routes, teacher 10"]
VALIDATION_IMAGES = 20


def withheld_names(names: list[str], fraction: float, seed: int) -> list[str]:
    count = int(round(len(names) * fraction))
    return sorted(random.Random(1000 + seed).sample(names, count)) if count else []


def draw(pool: FewShotSet, shots: int, seed: int, withheld: list[str]) -> tuple[FewShotSet, FewShotSet]:
    """(training set, validation set): images in a seeded order until every kept class has `shots` boxes, with the
    withheld classes' boxes removed; validation = the next pool images outside the draw, boxes intact."""
    order = list(range(len(pool.samples)))
    random.Random(seed).shuffle(order)  # the same order as benchmarks.few_shot.k_shot
    kept = [k for k, name in enumerate(pool.class_names) if name not in withheld]
    counts = {k: 0 for k in kept}
    chosen = []
    for index in order:
        if min(counts.values()) >= shots:
            break
        classes = pool.samples[index].classes.tolist()
        if any(counts.get(c, shots) < shots for c in classes):
            chosen.append(index)
            for c in classes:
                if c in counts:
                    counts[c] += 1
    samples = []
    for index in chosen:
        sample = copy.copy(pool.samples[index])
        keep = torch.tensor([c in counts for c in sample.classes.tolist()], dtype=torch.bool)
        sample.boxes, sample.classes = sample.boxes[keep], sample.classes[keep]
        samples.append(sample)
    rest = [pool.samples[i] for i in order if i not in set(chosen)][:VALIDATION_IMAGES]
    return FewShotSet(pool.class_names, samples), FewShotSet(pool.class_names, rest)


def class_means(per_class: dict[str, float], names: list[str]) -> float | None:
    values = [per_class[n] for n in names if per_class.get(n) == per_class.get(n)]  # NaN: no test box
    return statistics.mean(values) if values else None


def scored(detector, data: TaskData, prompt, withheld: list[str]) -> dict:
    result = evaluate(detector, data.test, prompt)
    kept = [n for n in data.test.class_names if n not in withheld]
    return {"map": result["map"], "withheld_map": class_means(result["per_class"], withheld),
            "kept_map": class_means(result["per_class"], kept), "per_class": result["per_class"],
            "forgetting_map50": evaluate(detector, data.pretrain_test, prompt)["map50"]}


def variant_options(variant: str) -> set[str]:
    """The options of a `never-worse` variant's name; a clear error for a name that is not one."""
    name, *options = variant.split(", ")
    unknown = [o for o in options if o not in OPTIONS]
    if name != NEVER_WORSE or unknown:
        raise ValueError(f"unknown variant {variant!r}: use 'today' or 'never-worse' followed by any of {OPTIONS}, "
                         "joined with ', '")
    return set(options)


def method_key(method: str) -> str:
    """The results log's extra key: empty for the default method (the rows measured before `--methods` existed)."""
    return "" if method == DEFAULT_METHOD else method


def measure(detector, data: TaskData, variant: str, shots: int, seed: int, lr: float, steps: int, batch: int,
            fraction: float, method: str = DEFAULT_METHOD) -> dict:
    withheld = withheld_names(data.pool.class_names, fraction, seed)
    train, validation = draw(data.pool, shots, seed, withheld)
    prompt = build_method(method, detector, seed=seed)
    start = time.perf_counter()
    if variant == "today":
        config = TrainConfig(steps=steps, batch_size=batch, seed=seed, lr=lr, unlabelled_negatives=True,
                             distill_weight=0.0)
        result = tune(detector, train, prompt, config)
        prompt.routing = None  # every class prompted, as before routing
    else:
        options = variant_options(variant)
        config = TrainConfig(steps=steps, batch_size=batch, seed=seed, lr=lr)
        if "margin 0.02" in options:
            config.stop_margin = 0.02
        if "teacher 10" in options:
            config.distill_weight = 10.0
        early_stopping = "full schedule" not in options
        result = tune(detector, train, prompt, config, validation=validation if early_stopping else None)
        if "box routes" not in options:
            report = evaluate_routes(detector, validation, prompt)
            prompt.routing = choose_routes(prompt.routing, report["zero-shot"]["per_class"],
                                           report["prompted"]["per_class"], chosen_on="validation images")
    seconds = time.perf_counter() - start
    row = {"task": data.task, "method": variant, "prompt": method, "variant": method_key(method), "shots": shots,
           "seed": seed, "lr": lr, "withheld": withheld,
           "train_images": len(train), "train_boxes": train.num_boxes(), "seconds": seconds,
           "kept_step": result.best_step, **scored(detector, data, prompt, withheld)}
    if prompt.routing is not None:
        row["routes"] = {name: entry.route for name, entry in prompt.routing.classes.items()}
    return row


def run(args) -> list[dict]:
    detector = load_detector(args.model)
    setting = {"model": model_fingerprint(args.model), "steps": args.steps, "batch_size": args.batch_size,
               "pool_images": args.pool_images, "test_images": args.test_images, "withheld": args.withheld,
               "validation_images": VALIDATION_IMAGES}
    log = ResultsLog(args.results, setting)
    lrs = learning_rates(args.lrs)
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        pretrain = load_coco(write_coco(root / "pretrain", PRETRAIN, args.test_images, 20_000),
                             root / "pretrain/images")
        data = {task: TaskData(root, task, args.pool_images, args.test_images, pretrain) for task in args.tasks}
        for seed in args.seeds:
            for task in args.tasks:
                withheld = withheld_names(data[task].pool.class_names, args.withheld, seed)
                if log.get(task=task, method="zero-shot", shots=0, seed=seed) is None:
                    log.add({"task": task, "method": "zero-shot", "shots": 0, "seed": seed, "withheld": withheld,
                             **scored(detector, data[task], None, withheld)})
                for shots in args.shots:
                    for method in args.methods:
                        for variant in args.variants:
                            if log.get(task=task, method=variant, shots=shots, seed=seed,
                                       variant=method_key(method)) is not None:
                                continue
                            row = log.add(measure(detector, data[task], variant, shots, seed, lrs.get(method),
                                                  args.steps, args.batch_size, args.withheld, method))
                            logger.info("%s", {k: v for k, v in row.items() if k not in ("setting", "per_class")})
    return [r for r in log.rows.values() if r["task"] in args.tasks and r["seed"] in args.seeds
            and (r["method"] == "zero-shot" or (r["shots"] in args.shots and r["method"] in args.variants
                                                and r.get("prompt", DEFAULT_METHOD) in args.methods))]


def _mean(rows: list[dict], key: str) -> str:
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(rows: list[dict]) -> str:
    lines = ["| task | method | variant | shots | seeds | withheld classes' mAP | kept classes' mAP | mAP | "
             "pre-training mAP@.5 | tune s |", "|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    order = {"zero-shot": 0, **{v: k + 1 for k, v in enumerate(VARIANTS)}}
    rank = len(order)

    def method_of(row: dict) -> str:
        return "-" if row["method"] == "zero-shot" else row.get("prompt", DEFAULT_METHOD)

    for row in sorted(rows, key=lambda r: (r["task"], r["shots"], method_of(r) != "-", method_of(r) != DEFAULT_METHOD,
                                           method_of(r), order.get(r["method"], rank), r["method"],
                                           r["seed"])):
        groups.setdefault((row["task"], method_of(row), row["method"], row["shots"]), []).append(row)
    for (task, method, variant, shots), items in groups.items():
        lines.append(f"| {task} | {method} | {variant} | {shots} | {len(items)} | {_mean(items, 'withheld_map')} | "
                     f"{_mean(items, 'kept_map')} | {_mean(items, 'map')} | {_mean(items, 'forgetting_map50')} | "
                     f"{_mean(items, 'seconds') if variant != 'zero-shot' else '-'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="assets/sdpt-small")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["today", NEVER_WORSE],
                        help=f"'today', or 'never-worse' followed by any of {OPTIONS} joined with ', ' "
                             f"(the tables' rows: {VARIANTS})")
    parser.add_argument("--methods", nargs="+", default=[DEFAULT_METHOD], choices=sorted(METHODS),
                        help="prompt methods to tune (each at its chosen lr)")
    parser.add_argument("--withheld", type=float, default=0.5, help="share of each task's classes without boxes")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--pool-images", type=int, default=80)
    parser.add_argument("--test-images", type=int, default=60)
    parser.add_argument("--lrs", type=Path, default=LR_CHOICE)
    parser.add_argument("--results", type=Path, default=None, help="JSON-lines log; rows already there are kept")
    parser.add_argument("--out", type=Path, default=None, help="directory for the table (withheld_<share>.md)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    for variant in args.variants:
        if variant != "today":
            try:
                variant_options(variant)
            except ValueError as error:
                parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    rows = run(args)
    text = table(rows)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"withheld_{args.withheld:g}.md").write_text(text + "\n")
    return rows


if __name__ == "__main__":
    main()
