"""The few-shot benchmark's --quick mode runs end to end, reports every column it promises, and goes on from its
results log instead of measuring a row twice."""
import json

from benchmarks.few_shot import main
from benchmarks.few_shot_report import summary, table


def test_quick_mode_reports_every_method_and_resumes_from_its_log(tmp_path):
    log = tmp_path / "rows.jsonl"
    rows = main(["--model", "tiny-random", "--quick", "--out", str(tmp_path), "--results", str(log)])
    methods = {row["method"] for row in rows}
    assert methods == {"zero-shot", "sdpt", "text", "full"}
    for row in rows:
        assert 0.0 <= row["map"] <= row["map50"] <= 1.0
        assert 0.0 <= row["forgetting_map50"] <= 1.0
    tuned = [row for row in rows if row["method"] != "zero-shot"]
    assert all(row["seconds"] > 0 and row["trainable"] > 0 for row in tuned)
    assert all(row["memory_released_first"] and row["memory_mb"] >= 0 for row in tuned)
    assert next(r for r in tuned if r["method"] == "full")["percent"] == 100.0
    assert (tmp_path / "table.md").read_text().count("\n") == len(rows) + 2
    assert (tmp_path / "map_vs_shots.png").stat().st_size > 1000
    assert (tmp_path / "summary.md").read_text().count("\n") == len(methods) + 2
    assert len(log.read_text().splitlines()) == len(rows)

    # Run again: every row comes from the log (nothing appended), with the same figures.
    again = main(["--model", "tiny-random", "--quick", "--results", str(log)])
    assert len(log.read_text().splitlines()) == len(rows)
    assert [(r["method"], r["map"]) for r in again] == [(r["method"], r["map"]) for r in rows]

    # Rows measured under another setting are ignored, not mixed in.
    changed = [{**json.loads(line), "setting": {"model": "other"}} for line in log.read_text().splitlines()]
    log.write_text("".join(json.dumps(row) + "\n" for row in changed))
    main(["--model", "tiny-random", "--quick", "--results", str(log), "--max-minutes", "0"])
    assert len(log.read_text().splitlines()) == len(rows) + 1  # only the zero-shot row is redone before the budget stops it


def test_memory_column_leaves_out_rows_logged_before_freed_memory_was_released():
    row = {"task": "many", "method": "sdpt", "shots": 5, "seed": 0, "map": 0.2, "map50": 0.3,
           "forgetting_map50": 0.7, "trainable": 10, "percent": 0.1, "seconds": 60.0, "memory_mb": 0.01}
    old_only = table([row])
    assert old_only.splitlines()[-1].endswith("| - |")
    mixed = table([row, {**row, "seed": 1, "memory_mb": 450.0, "memory_released_first": True}])
    assert mixed.splitlines()[-1].endswith("| 450 |")


def test_summary_averages_seeds_per_shot_count_and_spans_the_forgetting_range():
    def row(method, shots, seed, map_, after):
        return {"task": "many", "method": method, "shots": shots, "seed": seed, "map": map_,
                "forgetting_map50": after, "trainable": 0 if method == "zero-shot" else 10}
    rows = [row("zero-shot", 0, 0, 0.25, 0.7),
            row("sdpt", 1, 0, 0.2, 0.6), row("sdpt", 1, 1, 0.4, 0.7), row("sdpt", 5, 0, 0.5, 0.65)]
    lines = summary(rows).splitlines()
    assert lines[2] == "| zero-shot | 0 | 0.250 | 0.700 |"
    assert lines[3] == "| sdpt | 10 | 0.300 / 0.500 | 0.600-0.700 |"


def test_an_injection_is_an_entry_of_its_own_at_its_own_rate(tmp_path):
    """`sdpt:paper` tunes SDPT with the paper's injection under a row of its own; without a chosen rate of its own it
    tunes at SDPT's, and choosing one re-measures it alone."""
    log, lrs = tmp_path / "rows.jsonl", tmp_path / "lr_choice.json"
    lrs.write_text(json.dumps({"sdpt": 0.03}))
    command = ["--model", "tiny-random", "--quick", "--methods", "sdpt", "sdpt:paper", "--lrs", str(lrs),
               "--results", str(log)]
    rows = {row["method"]: row for row in main(command)}
    assert set(rows) == {"zero-shot", "sdpt", "sdpt:paper"}
    assert rows["sdpt:paper"]["options"]["injection"] == "paper"
    assert rows["sdpt"]["options"]["injection"] != "paper"
    assert rows["sdpt:paper"]["lr"] == rows["sdpt"]["lr"] == 0.03

    lrs.write_text(json.dumps({"sdpt": 0.03, "sdpt:paper": 0.01}))
    measured = len(log.read_text().splitlines())
    again = {row["method"]: row for row in main(command)}
    assert len(log.read_text().splitlines()) == measured + 1  # only the paper's injection, at its new rate
    assert again["sdpt:paper"]["lr"] == 0.01 and again["sdpt"] == rows["sdpt"]
