"""The few-shot table on several hosts side by side: each entry's mean mAP per task and shot count on each host.

    python -m benchmarks.host_table \
        --host GLIP assets/glip-small benchmarks/results/glip_few_shot_rows.jsonl benchmarks/results/glip_lr_choice.json \
        --host "Grounding DINO" assets/sdpt-small benchmarks/results/few_shot_rows.jsonl benchmarks/results/lr_choice.json \
        --out benchmarks/results/hosts.md

Each host's rows come from its own `benchmarks.few_shot` log and count as that benchmark counts them: measured under
the same protocol and model file, at the rate its own lr search chose (`lr_choice.json`; an entry without one is left
out) and at the method's current defaults. Stale rows are left out, not mixed in; a cell without rows shows "-" and one with fewer seeds says how many.
Below the side-by-side table, one table per host gives each entry's mean over the tasks per shot count, how many of its
runs ended below the zero-shot model on their task, and how much it forgets.
"""
from __future__ import annotations

import argparse
import logging
import statistics
from pathlib import Path

from benchmarks.entries import ENTRIES
from benchmarks.few_shot import ResultsLog, add_protocol_arguments, learning_rates, selected, setting_of
from sdpt.synthetic.grounding import TASKS

logger = logging.getLogger("benchmarks.host_table")


def host_rows(model: str, results: Path, lrs: Path) -> tuple[list[dict], dict[str, float]]:
    """The current rows of one host's few-shot log (every entry, task, shot count and seed) of the entries its own lr
    search chose a rate for, and those rates."""
    # the protocol (steps, batch, image counts) at the few-shot benchmark's own defaults, so a row's setting matches
    parser = argparse.ArgumentParser()
    add_protocol_arguments(parser)
    args = parser.parse_args(["--model", model, "--results", str(results), "--lrs", str(lrs)])
    args.lrs = learning_rates(args.lrs)
    args.tasks, args.methods, args.shots, args.seeds = list(TASKS), ENTRIES, [1, 5, 10], [0, 1, 2]
    rows = selected(ResultsLog(results, setting_of(args)), args)
    # An entry the host's search has not chosen a rate for would fall back to its class's default, a rate chosen on
    # another host: such rows do not belong in a comparison of hosts.
    return [r for r in rows if r["method"] == "zero-shot" or r["method"] in args.lrs], args.lrs


def cell(rows: list[dict], seeds: int) -> str:
    """Mean mAP (± sd over seeds), with the seed count where it falls short of the table's."""
    if not rows:
        return "-"
    values = [r["map"] for r in rows]
    text = f"{statistics.mean(values):.3f}" + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "")
    return text if len(values) >= seeds else f"{text} ({len(values)} of {seeds} seeds)"


def side_by_side(hosts: dict[str, tuple[list[dict], dict[str, float]]], tasks: list[str] = TASKS,
                 seeds: int = 3) -> str:
    """One line per entry and shot count; per task, one column per host. The lr columns give each host's rate."""
    names = list(hosts)
    lines = ["| method | shots | " + " | ".join(f"{task}, {name}" for task in tasks for name in names) + " | "
             + " | ".join(f"lr, {name}" for name in names) + " |",
             "|---|---|" + "---|" * (len(tasks) * len(names) + len(names))]
    entries = ["zero-shot"] + [e for e in ENTRIES if any(r["method"] == e for rows, _ in hosts.values() for r in rows)]
    for entry in entries:
        shot_counts = sorted({r["shots"] for rows, _ in hosts.values() for r in rows if r["method"] == entry})
        for shots in shot_counts:
            cells = [cell([r for r in hosts[name][0] if r["method"] == entry and r["shots"] == shots
                           and r["task"] == task], 1 if entry == "zero-shot" else seeds)
                     for task in tasks for name in names]
            rates = ["-" if entry == "zero-shot" else f"{hosts[name][1][entry]:g}" if entry in hosts[name][1] else "-"
                     for name in names]
            lines.append(f"| {entry} | {shots} | " + " | ".join(cells) + " | " + " | ".join(rates) + " |")
    return "\n".join(lines)


def _forgetting(rows: list[dict]) -> tuple[str, str]:
    """Mean pre-training mAP@.5 after tuning, routed (classes outside the prompt on the zero-shot model, as the library
    detects) and with every class prompted. Rows logged before routed evaluation existed measured every class
    prompted under `forgetting_map50` and have no routed figure."""
    routed = [r["forgetting_map50"] for r in rows if "forgetting_map50_all_prompted" in r]
    prompted = [r.get("forgetting_map50_all_prompted", r["forgetting_map50"]) for r in rows]
    return tuple(f"{statistics.mean(v):.3f}" if v else "-" for v in (routed, prompted))


def task_means(rows: list[dict], tasks: list[str] = TASKS) -> str:
    """Per entry: the mean over tasks of each task's seed mean at every shot count ("-" while a task has no rows),
    its trained parameters, how many runs ended below zero-shot on their task, and the pre-training concepts' mean
    mAP@.5 after tuning (forgetting; zero-shot's figure is the model before tuning)."""
    zero = {r["task"]: r for r in rows if r["method"] == "zero-shot"}
    shot_counts = sorted({r["shots"] for r in rows if r["method"] != "zero-shot"})
    lines = ["| method | " + " | ".join(f"{k} shot{'s' * (k != 1)}" for k in shot_counts)
             + " | trained parameters | runs below zero-shot | pre-training mAP@.5 after, routed"
             " | pre-training mAP@.5 after, every class prompted |",
             "|---|" + "---|" * (len(shot_counts) + 4)]
    if len(zero) == len(tasks):
        before = f"{statistics.mean(r['forgetting_map50'] for r in zero.values()):.3f}"
        mean_zero = f"{statistics.mean(zero[t]['map'] for t in tasks):.3f}"
        lines.append(f"| zero-shot | {' | '.join(mean_zero for _ in shot_counts)} | 0 | - | {before} | {before} |")
    for entry in [e for e in ENTRIES if any(r["method"] == e for r in rows)]:
        mine = [r for r in rows if r["method"] == entry and r["task"] in tasks]
        cells = []
        for shots in shot_counts:
            per_task = [[r["map"] for r in mine if r["shots"] == shots and r["task"] == t] for t in tasks]
            cells.append(f"{statistics.mean(statistics.mean(v) for v in per_task):.3f}" if all(per_task) else "-")
        below = sum(r["map"] < zero[r["task"]]["map"] for r in mine if r["task"] in zero)
        lines.append(f"| {entry} | " + " | ".join(cells) + f" | {mine[0].get('trainable', 0):,} | "
                     f"{below} of {len(mine)} | " + " | ".join(_forgetting(mine)) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", nargs=4, action="append", required=True,
                        metavar=("NAME", "MODEL", "RESULTS", "LR_CHOICE"),
                        help="a host's name in the table, its model, its few-shot log and its lr_choice.json")
    parser.add_argument("--out", type=Path, default=None, help="markdown file for the table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hosts = {name: host_rows(model, Path(results), Path(lrs)) for name, model, results, lrs in args.host}
    means = [f"Task means, {name} (mean over tasks of each task's seed mean, mAP@[.5:.95]):\n\n{task_means(rows)}"
             for name, (rows, _) in hosts.items()]
    text = "\n\n".join([side_by_side(hosts), *means])
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return text


if __name__ == "__main__":
    main()
