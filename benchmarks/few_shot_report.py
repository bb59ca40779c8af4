"""What the few-shot benchmark writes from its rows: the table, the one-line-per-method summary, the method card the
app's Tune tab shows, and the plot of mAP against shots."""
from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks.entries import ENTRIES, METHODS


def mean_spread(items: list[dict], key: str, digits: int = 3) -> str:
    """"mean ± sd" of `key` over rows (just the value for one row)."""
    values = [r[key] for r in items]
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def quality_cells(items: list[dict]) -> str:
    """The mAP, mAP50 and pre-training mAP50 cells of a table row, each "mean ± sd" over the rows' seeds."""
    return " | ".join(mean_spread(items, key) for key in ("map", "map50", "forgetting_map50"))


def table(rows: list[dict]) -> str:
    lines = ["| task | method | shots | seeds | mAP | mAP50 | pre-training mAP50 after | trainable | % | tune s | peak MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["method"], row["shots"]), []).append(row)

    def memory(items: list[dict]) -> str:
        # Rows logged before freed memory was handed back first under-report (see _release_free_memory).
        valid = [r for r in items if r.get("memory_released_first") or r["method"] == "zero-shot"]
        return mean_spread(valid, "memory_mb", 0) if valid else "-"

    for (task, method, shots), items in groups.items():
        lines.append(f"| {task} | {method} | {shots} | {len(items)} | {quality_cells(items)} | "
                     f"{items[0]['trainable']:,} | {items[0]['percent']:.4f} | {mean_spread(items, 'seconds', 1)} | "
                     f"{memory(items)} |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """One line per method: its mean mAP on each task at every shot count ("a / b / c"), and the range of the
    pre-training concepts' mAP@.5 after tuning over all its runs (how much it forgets)."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    shots = sorted({r["shots"] for r in rows if r["method"] != "zero-shot"})
    methods = list(dict.fromkeys(r["method"] for r in sorted(rows, key=lambda r: r["method"] != "zero-shot")))
    lines = ["| method | trainable | " + " | ".join(tasks) + " | pre-training mAP@.5 after (range) |",
             "|---|---|" + "---|" * len(tasks) + "---|"]
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        cells = []
        for task in tasks:
            means = [statistics.mean(r["map"] for r in mine if r["task"] == task and r["shots"] == k)
                     for k in ([0] if method == "zero-shot" else shots)
                     if any(r["task"] == task and r["shots"] == k for r in mine)]
            cells.append(" / ".join(f"{m:.3f}" for m in means) or "-")
        after = [r["forgetting_map50"] for r in mine]
        spread = f"{min(after):.3f}" if min(after) == max(after) else f"{min(after):.3f}-{max(after):.3f}"
        lines.append(f"| {method} | {mine[0]['trainable']:,} | " + " | ".join(cells) + f" | {spread} |")
    return "\n".join(lines)


def method_card(rows: list[dict], model: str, host: str) -> dict:
    """Per method, what the app's Tune tab says of it: trainable parameters and share, the mean mAP gain over
    zero-shot at the largest shot count (mean over each task's seeds, then over tasks), and the pre-training concepts' mean mAP@.5
    after tuning against before (forgetting)."""
    zero = {r["task"]: r for r in rows if r["method"] == "zero-shot"}
    shots = max((r["shots"] for r in rows if r["method"] != "zero-shot"), default=0)
    card = {"model": model, "host": host, "shots": shots, "methods": {}}
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method and r["shots"] == shots and r["task"] in zero]
        if not mine:
            continue
        # per task over its seeds first, then over tasks: a task with more seeds must not weigh more
        tasks = sorted({r["task"] for r in mine})

        def task_mean(value) -> float:
            return statistics.mean(statistics.mean(value(r) for r in mine if r["task"] == t) for t in tasks)

        card["methods"][method] = {
            "trainable": mine[0]["trainable"], "percent": mine[0]["percent"],
            "gain": task_mean(lambda r: r["map"] - zero[r["task"]]["map"]),
            "pretrain_map50_before": task_mean(lambda r: zero[r["task"]]["forgetting_map50"]),
            "pretrain_map50_after": task_mean(lambda r: r["forgetting_map50"]),
            "tasks": sorted({r["task"] for r in mine}), "runs": len(mine), "lr": mine[0].get("lr")}
    return card


def plot(rows: list[dict], path: Path) -> None:
    """mAP against shots per task (top) and the pre-training concepts' mAP@.5 after tuning (bottom); error bars are
    the spread over seeds, dashed lines the zero-shot model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))  # table order
    panels = [("map", "task mAP@[.5:.95]"), ("forgetting_map50", "pre-training mAP@.5 after")]
    figure, axes = plt.subplots(len(panels), len(tasks), figsize=(5 * len(tasks), 7), squeeze=False)
    for column, task in enumerate(tasks):
        task_rows = [r for r in rows if r["task"] == task]
        seeds = len({r["seed"] for r in task_rows if r["method"] != "zero-shot"})
        for row_index, (key, label) in enumerate(panels):
            axis = axes[row_index][column]
            for method in [m for m in ENTRIES if any(r["method"] == m for r in task_rows)]:
                shots = sorted({r["shots"] for r in task_rows if r["method"] == method})
                values = [[r[key] for r in task_rows if r["method"] == method and r["shots"] == k] for k in shots]
                spreads = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
                axis.errorbar(shots, [statistics.mean(v) for v in values], yerr=spreads, marker="o", capsize=3,
                              label=method)
            zero = [r[key] for r in task_rows if r["method"] == "zero-shot"]
            if zero:
                axis.axhline(zero[0], color="grey", linestyle="--", label="zero-shot")
            axis.set_xticks(sorted({r["shots"] for r in task_rows if r["method"] != "zero-shot"}))
            axis.set_xlabel("shots")
            axis.set_ylabel(label)
            if row_index == 0:
                axis.set_title(f"{task} (seeds: {seeds})")
    # One legend for the figure: a panel can lack methods while the table is still being filled.
    legend = {}
    for axis in axes.flat:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    figure.legend(legend.values(), legend.keys(), loc="center right", fontsize=9)
    figure.tight_layout(rect=(0, 0, 0.92, 1))
    figure.savefig(path, dpi=100)
