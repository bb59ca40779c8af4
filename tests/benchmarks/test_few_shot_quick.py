"""The few-shot benchmark's --quick mode runs end to end, reports every column it promises, and goes on from its
results log instead of measuring a row twice."""
import json

from benchmarks.few_shot import main


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
    assert next(r for r in tuned if r["method"] == "full")["percent"] == 100.0
    assert (tmp_path / "table.md").read_text().count("\n") == len(rows) + 2
    assert (tmp_path / "map_vs_shots.png").stat().st_size > 1000
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
