"""Early stopping's rule, chosen on validation draws (never the test images).

    python -m benchmarks.stop_rule_search --results benchmarks/results/stop_rule_rows.jsonl

Which scored step should a tune keep: the best validation step, the latest one within a margin of the best, or the
last step (no early stopping)? On 20 validation images the best step is partly noise, and the margin rule came in
after the best-step rule was seen to lose on a test table, so this script chooses among the rules where no test image
is involved.

Protocol: the withheld-classes draws of `benchmarks.withheld_classes` (half of the classes without training boxes,
`--shots` boxes for each other class), but with draw seeds of their own (`--seeds`, default 100-102, not the test
table's 0-2). Each draw is tuned once with the default method at its chosen lr, scored on its 20 validation images
every `validate_every` steps; every scored step's prompt is kept. Each rule then picks its step from the same scores,
routes are chosen on the validation images as the app does, and the prompt is scored on **selection images**: 60
images of the task from a seed of their own, neither pool nor test. Each rule is scored twice: with routes as chosen,
and with no class promoted to the prompt that had no training box (`no 0-box promotion`). The variant with the best
mean selection mAP over tasks, shots and draws wins; the script prints it with every variant's mean (overall,
withheld and kept classes).
`--method` and `--teacher` run the same protocol for another method (at its chosen lr) or teacher weight, for a
choice per method; their rows carry `variant` = "<method>, teacher <w>" and are logged apart from the default's.
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

from benchmarks.few_shot import (LR_CHOICE, TASKS, ResultsLog, learning_rates, load_coco, model_fingerprint,
                                 task_pool, write_coco)
from benchmarks.withheld_classes import class_means, draw, withheld_names
from sdpt.config import TrainConfig
from sdpt.detector import load_detector
from sdpt.early_stopping import EarlyStopping
from sdpt.evaluate import evaluate, evaluate_routes
from sdpt.methods import DEFAULT_METHOD, METHODS, build_method
from sdpt.routing import PROMPTED, ZERO_SHOT, choose_routes
from sdpt.train import tune

logger = logging.getLogger("benchmarks.stop_rule_search")
SELECTION_SEED_OFFSET = 60_000  # pool images are made from 30_000, test images from 40_000
FULL_SCHEDULE = "full schedule"
RULES = {"best step": 0.0, "margin 0.02": 0.02, "margin 0.05": 0.05, FULL_SCHEDULE: None}
# Routes chosen on validation images may promote a class with no training box to the prompt when it scored better
# there; this variant of each rule forbids that (such classes stay zero-shot whatever 20 images say).
NO_PROMOTION = "no 0-box promotion"
TEACHER_WEIGHT = 10.0


def picked_step(rule: str, scores: list[tuple[int, float]], steps: int, every: int) -> int:
    """The step a rule keeps, from the (step, validation score) list of one tune."""
    if RULES[rule] is None:
        return steps
    return EarlyStopping(None, every, RULES[rule], scores=list(scores)).best_step


def run_name(method: str, teacher: float) -> str:
    """The log's `variant` for a method and teacher weight: empty for the setting the rule was chosen under, so the
    rows logged before these options existed still count."""
    return "" if (method, teacher) == (DEFAULT_METHOD, TEACHER_WEIGHT) else f"{method}, teacher {teacher:g}"


def measure(detector, task: str, pool, selection, shots: int, seed: int, lr: float, steps: int, batch: int,
            fraction: float, method: str = DEFAULT_METHOD, teacher: float = TEACHER_WEIGHT) -> list[dict]:
    """One tune of the draw; one row per rule, scored on the selection images."""
    withheld = withheld_names(pool.class_names, fraction, seed)
    train, validation = draw(pool, shots, seed, withheld)
    # the teacher at 10 unless asked: the default when the rule was chosen, which the logged rows measured
    # (benchmarks.teacher_weight_search reuses this protocol's draws to compare weights)
    config = TrainConfig(steps=steps, batch_size=batch, seed=seed, lr=lr, distill_weight=teacher)
    prompt = build_method(method, detector, seed=seed)
    states: dict[int, dict] = {}

    def keep_state(info) -> None:  # the prompt after step `info.step`, where early stopping scores it
        if info.step % config.validate_every == 0 or info.step == steps:
            states[info.step] = {k: v.detach().clone() for k, v in prompt.state_dict().items()}

    start = time.perf_counter()
    result = tune(detector, train, prompt, config, on_step=keep_state, validation=validation)
    seconds = time.perf_counter() - start
    box_routes = prompt.routing
    zero_shot = evaluate(detector, selection, None)
    kept = [n for n in selection.class_names if n not in withheld]
    rows = []
    for rule in RULES:
        step = picked_step(rule, result.validation, steps, config.validate_every)
        if step == 0:  # before any step every method is the zero-shot model, bit for bit
            scored = zero_shot
        else:
            with torch.no_grad():
                prompt.load_state_dict(states[step])
            report = evaluate_routes(detector, validation, prompt)
            prompt.routing = choose_routes(box_routes, report["zero-shot"]["per_class"],
                                           report["prompted"]["per_class"], chosen_on="validation images")
            scored = evaluate(detector, selection, prompt)
            # the same prompt with no class promoted that had no training box (the prompt never saw one)
            for entry in prompt.routing.classes.values():
                if entry.boxes == 0 and entry.route == PROMPTED:
                    entry.route = ZERO_SHOT
            unpromoted = evaluate(detector, selection, prompt)
            prompt.routing = box_routes
        variants = {rule: scored, f"{rule}, {NO_PROMOTION}": zero_shot if step == 0 else unpromoted}
        for name, metrics in variants.items():
            rows.append({"task": task, "method": name, "variant": run_name(method, teacher), "prompt": method,
                         "teacher": teacher, "shots": shots, "seed": seed, "lr": lr, "kept_step": step,
                         "validation": result.validation, "seconds": seconds, "map": metrics["map"],
                         "withheld_map": class_means(metrics["per_class"], withheld),
                         "kept_map": class_means(metrics["per_class"], kept),
                         "zero_shot_map": zero_shot["map"],
                         "zero_shot_withheld_map": class_means(zero_shot["per_class"], withheld),
                         "zero_shot_kept_map": class_means(zero_shot["per_class"], kept)})
    return rows


def summary(rows: list[dict]) -> tuple[str, str]:
    """(markdown table of each rule's means, the winning rule)."""
    lines = ["| rule | runs | selection mAP | withheld classes | kept classes | gain over zero-shot | kept step |",
             "|---|---|---|---|---|---|---|"]
    first = [r for r in rows if r["method"] == next(iter(RULES))]
    if first:
        lines.append(f"| zero-shot | {len(first)} | {statistics.mean(r['zero_shot_map'] for r in first):.4f} | "
                     f"{statistics.mean(r['zero_shot_withheld_map'] for r in first):.4f} | "
                     f"{statistics.mean(r['zero_shot_kept_map'] for r in first):.4f} | - | 0 |")
    means = {}
    for rule in [name for rule in RULES for name in (rule, f"{rule}, {NO_PROMOTION}")]:
        items = [r for r in rows if r["method"] == rule]
        if not items:
            continue
        means[rule] = statistics.mean(r["map"] for r in items)
        gain = statistics.mean(r["map"] - r["zero_shot_map"] for r in items)
        lines.append(f"| {rule} | {len(items)} | {means[rule]:.4f} | "
                     f"{statistics.mean(r['withheld_map'] for r in items):.4f} | "
                     f"{statistics.mean(r['kept_map'] for r in items):.4f} | {gain:+.4f} | "
                     f"{statistics.mean(r['kept_step'] for r in items):.0f} |")
    best = max(means, key=means.get) if means else ""
    return "\n".join(lines), best


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """The validation-draw protocol's options, shared with `benchmarks.teacher_weight_search`."""
    parser.add_argument("--model", default="assets/sdpt-small")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    parser.add_argument("--withheld", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--pool-images", type=int, default=80)
    parser.add_argument("--selection-images", type=int, default=60)
    parser.add_argument("--lrs", type=Path, default=LR_CHOICE)
    parser.add_argument("--results", type=Path, default=None, help="JSON-lines log; rows already there are kept")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=sorted(METHODS),
                        help="the method tuned on every draw, at its chosen lr (a choice per method)")


def protocol_log(args) -> ResultsLog:
    """The results log, keyed by the protocol's settings (rows of another setting are not reused)."""
    setting = {"model": model_fingerprint(args.model), "steps": args.steps, "batch_size": args.batch_size,
               "pool_images": args.pool_images, "selection_images": args.selection_images,
               "withheld": args.withheld}
    return ResultsLog(args.results, setting)


def selection_set(root: Path, task: str, count: int):
    """The task's selection images: a seed of their own, neither pool nor test."""
    return load_coco(write_coco(root / task / "selection", TASKS[task], count, SELECTION_SEED_OFFSET),
                     root / task / "selection/images")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_protocol_arguments(parser)
    parser.add_argument("--teacher", type=float, default=TEACHER_WEIGHT,
                        help=f"the zero-shot teacher's weight while tuning (default {TEACHER_WEIGHT:g}, as the rule "
                             "was chosen under; the product's default is TrainConfig.distill_weight)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    detector = load_detector(args.model)
    log = protocol_log(args)
    lr = learning_rates(args.lrs).get(args.method)
    variant = run_name(args.method, args.teacher)
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        for task in args.tasks:
            pool = task_pool(root, task, args.pool_images)
            selection = selection_set(root, task, args.selection_images)
            for shots in args.shots:
                for seed in args.seeds:
                    if all(log.get(task=task, method=f"{rule}, {NO_PROMOTION}", shots=shots, seed=seed,
                                   variant=variant) is not None for rule in RULES):
                        continue
                    for row in measure(detector, task, pool, selection, shots, seed, lr, args.steps,
                                       args.batch_size, args.withheld, args.method, args.teacher):
                        log.add(row)
                        logger.info("%s", {k: v for k, v in row.items() if k not in ("setting", "validation")})
    rows = [r for r in log.rows.values() if r["task"] in args.tasks and r["shots"] in args.shots
            and r["seed"] in args.seeds and r.get("variant", "") == variant]
    text, best = summary(rows)
    print(text)
    print(f"\nchosen on the selection images: {best}")
    return rows


if __name__ == "__main__":
    main()
