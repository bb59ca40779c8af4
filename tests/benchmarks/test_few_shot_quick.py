"""The few-shot benchmark's --quick mode runs end to end and reports every column it promises."""
from benchmarks.few_shot import main


def test_quick_mode_reports_every_method(tmp_path):
    rows = main(["--model", "tiny-random", "--quick", "--out", str(tmp_path)])
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
