"""SDPT ablations on one few-shot task: injection, token count, layers, shared set, streams, init, scales, lr and
two forgetting controls.

    python -m benchmarks.sdpt_ablation --model assets/sdpt-small --results benchmarks/results/ablation_rows.jsonl \
        --out benchmarks/results
    python -m benchmarks.sdpt_ablation --model tiny-random --quick          # a smoke run

Each variant changes one SDPT option from its default and is tuned with the few-shot benchmark's protocol
(`benchmarks.few_shot`: same k-shot draws, steps, test images and forgetting check), so the rows compare with the
main table. Rows go to a JSON-lines log as they finish; a later run skips what the log already has.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from benchmarks.few_shot import (ResultsLog, TaskData, add_protocol_arguments, default_options, learning_rates,
                                 measure, quick_protocol, setting_of, train_config, zero_shot)
from benchmarks.few_shot_report import mean_spread, quality_cells
from benchmarks.lr_search import injection_entry
from sdpt.data import load_coco
from sdpt.detector import load_detector
from sdpt.synthetic.grounding import PRETRAIN, TASKS, write_coco

logger = logging.getLogger("benchmarks.sdpt_ablation")

# Each variant changes SDPT's defaults by its options; "lr" and "weight_decay" go to the tuning config instead.
VARIANTS: dict[str, dict] = {
    "default (branch after gamma, per-head scales, 20 tokens, every fusion layer, a set per layer)": {},
    "injection: shared-softmax gate (the previous default)": {"injection": "shared_gate"},
    "injection: appended, ungated (the paper's form)": {"injection": "paper"},
    "2 tokens per layer": {"num_tokens": 2},
    "10 tokens per layer (the default before 2026-12-01)": {"num_tokens": 10},
    "last fusion layer only": {"layers": [-1]},
    "one set shared by all layers": {"shared": True},
    "text stream only (image queries do not see the prompts)": {"image_sees_text_prompts": False},
    "image stream only (text queries do not see the prompts)": {"text_sees_image_prompts": False},
    "normal init": {"init": "normal"},
    "init from the training boxes (image tokens in each box, through vision_proj)": {"init": "boxes"},
    "one scale per layer and stream": {"per_head_scales": False},
    "lr / 10": {"lr_factor": 0.1},
    "lr x 2": {"lr_factor": 2.0},
    "scales' lr / 10 (forgetting control)": {"gate_lr_scale": 0.1},
    "weight decay 0.25, as GLIP's prompt tuning (forgetting control)": {"weight_decay": 0.25},
    "augmentation: mirrored and zoomed-out views": {"augment": True},
}
TRAIN_KEYS = ("lr_factor", "weight_decay", "augment")


def split_variant(variant: dict) -> tuple[dict, dict]:
    """(method options, tuning-config changes) of a variant."""
    return ({k: v for k, v in variant.items() if k not in TRAIN_KEYS},
            {k: v for k, v in variant.items() if k in TRAIN_KEYS})


def variant_config(args, seed: int, changes: dict, options: dict | None = None):
    """The tuning config of a variant: SDPT's chosen lr, or its injection's own where the lr search chose one."""
    config = train_config(args, "sdpt", seed)
    entry = injection_entry("sdpt", options or {})
    if entry is not None and entry in args.lrs:
        config.lr = args.lrs[entry]
    if "lr_factor" in changes:
        config.lr = config.lr * changes["lr_factor"]
    if "weight_decay" in changes:
        config.weight_decay = changes["weight_decay"]
    if "augment" in changes:
        config.augment = changes["augment"]
    return config


def is_current(row: dict, args) -> bool:
    """A measured row counts while SDPT's defaults (plus its variant's change) and its lr are those it was measured
    with, so a new default re-bases every row instead of mixing bases."""
    options, changes = split_variant(VARIANTS[row["variant"]])
    return (row.get("lr") == variant_config(args, row["seed"], changes, options).lr and row.get("train", {}) == changes
            and row.get("options") == default_options("sdpt", options))


def run(args) -> list[dict]:
    detector = load_detector(args.model)
    log = ResultsLog(args.results, {**setting_of(args), "ablation": 2})
    deadline = time.monotonic() + 60 * args.max_minutes if args.max_minutes is not None else None
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        pretrain_test = load_coco(write_coco(root / "pretrain", PRETRAIN, args.test_images, 20_000), root / "pretrain/images")
        data = TaskData(root, args.task, args.pool_images, args.test_images, pretrain_test)
        if log.get(task=args.task, method="zero-shot", shots=0, seed=0) is None:
            log.add(zero_shot(detector, data))
        for seed in args.seeds:
            for variant in args.variants:
                done = log.get(task=args.task, method="sdpt", shots=args.shots, seed=seed, variant=variant)
                if done is not None and is_current(done, args):
                    continue
                options, changes = split_variant(VARIANTS[variant])
                config = variant_config(args, seed, changes, options)
                if deadline is not None and time.monotonic() > deadline:
                    logger.info("time budget of %s minutes spent; run again to go on", args.max_minutes)
                    return rows_of(log, args)
                row = measure(detector, data, "sdpt", args.shots, seed, config, options)
                row = log.add({**row, "variant": variant, "train": changes})
                logger.info("%s", {k: v for k, v in row.items() if k != "setting"})
    return rows_of(log, args)


def rows_of(log: ResultsLog, args) -> list[dict]:
    rows = [r for r in log.rows.values() if r["task"] == args.task and (
        r["method"] == "zero-shot" or (r.get("variant") in args.variants and r["seed"] in args.seeds
                                       and is_current(r, args)))]
    order = {v: k for k, v in enumerate(VARIANTS)}
    return sorted(rows, key=lambda r: (order.get(r.get("variant", ""), -1), r["seed"]))


def table(rows: list[dict]) -> str:
    lines = ["| variant | seeds | mAP | mAP50 | pre-training mAP50 after | trainable | tune s |",
             "|---|---|---|---|---|---|---|"]
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row.get("variant") or "zero-shot", []).append(row)

    for variant, items in groups.items():
        lines.append(f"| {variant} | {len(items)} | {quality_cells(items)} | {items[0]['trainable']:,} | "
                     f"{mean_spread(items, 'seconds', 1)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 variants, 1 seed, few steps, few images")
    parser.add_argument("--task", default="new_word", choices=list(TASKS),
                        help="default `new_word`: new words for new shapes, the task with the most to gain (zero-shot "
                             "mAP 0.020) and the heaviest forgetting, so both sides of the trade-off show")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="VARIANT")
    parser.add_argument("--out", type=Path, default=None, help="directory for ablation.md")
    add_protocol_arguments(parser)
    args = parser.parse_args(argv)
    args.lrs = learning_rates(args.lrs)
    if args.quick:
        args.seeds, args.shots = [0], 1
        args.variants = [v for v in VARIANTS if VARIANTS[v].keys() & {"layers", "shared"}] + [next(iter(VARIANTS))]
        quick_protocol(args)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = run(args)
    text = table(rows)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "ablation.md").write_text(text + "\n")
    return rows


if __name__ == "__main__":
    main()
