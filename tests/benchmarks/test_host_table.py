"""The hosts' side-by-side table shows each host's current rows only: at the rate its own search chose, never a rate
borrowed from another host, and says where a cell has fewer seeds than the table."""
import json

from benchmarks.few_shot import default_options
from benchmarks.host_table import host_rows, side_by_side, task_means

SETTING = {"model": "tiny-random", "steps": 200, "batch_size": 4, "pool_images": 80, "test_images": 60, "protocol": 2}


def row(method, task, shots, seed, map_, lr, options=None):
    base, changes = ("sdpt", {"injection": "paper"}) if method == "sdpt:paper" else (method, {})
    return {"task": task, "method": method, "shots": shots, "seed": seed, "map": map_, "lr": lr,
            "options": options if options is not None else default_options(base, changes), "setting": SETTING}


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_rows_count_only_at_the_hosts_own_rates_and_defaults(tmp_path):
    log, lrs = tmp_path / "rows.jsonl", tmp_path / "lr_choice.json"
    lrs.write_text(json.dumps({"sdpt": 0.5, "sdpt:paper": 0.2}))
    zero = {**row("sdpt", "many", 0, 0, 0.3, None), "method": "zero-shot"}
    write(log, [zero,
                row("sdpt", "many", 10, 0, 0.40, 0.5), row("sdpt", "many", 10, 1, 0.50, 0.5),
                row("sdpt", "many", 10, 2, 0.90, 0.1),  # measured at a rate no longer chosen: stale
                row("sdpt:paper", "many", 10, 0, 0.35, 0.2),
                row("text", "many", 10, 0, 0.99, 0.05),  # no rate chosen on this host: left out
                row("dual", "many", 10, 0, 0.99, 0.1, options={"num_tokens": 1})])
    rows, rates = host_rows("tiny-random", log, lrs)
    assert rates == {"sdpt": 0.5, "sdpt:paper": 0.2}
    assert sorted((r["method"], r["seed"]) for r in rows) == [("sdpt", 0), ("sdpt", 1), ("sdpt:paper", 0),
                                                               ("zero-shot", 0)]

    other = [{**zero, "map": 0.2}, {**row("sdpt", "many", 10, 0, 0.25, 0.1)}]
    text = side_by_side({"A": (rows, rates), "B": (other, {"sdpt": 0.1})}, tasks=["many"])
    lines = text.splitlines()
    assert lines[0] == "| method | shots | many, A | many, B | lr, A | lr, B |"
    assert "| zero-shot | 0 | 0.300 | 0.200 | - | - |" in lines
    assert "| sdpt | 10 | 0.450 ± 0.071 (2 of 3 seeds) | 0.250 (1 of 3 seeds) | 0.5 | 0.1 |" in lines
    assert "| sdpt:paper | 10 | 0.350 (1 of 3 seeds) | - | 0.2 | - |" in lines
    assert not any(line.startswith(("| text", "| dual")) for line in lines)


def test_task_means_weigh_tasks_equally_count_losses_and_keep_forgetting_apart():
    zero = [{**row("sdpt", task, 0, 0, value, None), "method": "zero-shot", "forgetting_map50": 0.7}
            for task, value in (("a", 0.1), ("b", 0.3))]
    tuned = [{**row("sdpt", "a", 10, seed, value, 0.5), "forgetting_map50": 0.6, "forgetting_map50_all_prompted": 0.2}
             for seed, value in ((0, 0.2), (1, 0.4), (2, 0.0))]  # seed 2 ends below zero-shot
    tuned.append({**row("sdpt", "b", 10, 0, 0.5, 0.5), "forgetting_map50": 0.3})  # logged before routing: all prompted
    tuned.append({**row("text", "a", 10, 0, 0.9, 0.05), "forgetting_map50": 0.5, "forgetting_map50_all_prompted": 0.4})
    lines = task_means(zero + tuned, tasks=["a", "b"]).splitlines()
    assert lines[0].startswith("| method | 10 shots | trained parameters | runs below zero-shot |")
    assert lines[2] == "| zero-shot | 0.200 | 0 | - | 0.700 | 0.700 |"
    # per task over seeds first (a: 0.2, b: 0.5), then over tasks: a task with more seeds must not weigh more
    assert lines[3] == "| sdpt | 0.350 | 0 | 1 of 4 | 0.600 | 0.225 |"
    assert lines[4] == "| text | - | 0 | 0 of 1 | 0.500 | 0.400 |"  # no row on task b: no mean
