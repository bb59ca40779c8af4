"""The teacher-weight search: the grid grows up its ladder only while the largest weight wins on every draw, and a
short real run on the tiny random model tunes each weight of the grid on the same draw, logs it, and resumes
without re-running what the log has."""
from benchmarks.teacher_weight_search import GRID, LADDER, grid_of, main


def _rows(scores: dict[float, float], draws: int = 2) -> list[dict]:
    return [{"weight": w, "map": m} for w, m in scores.items() for _ in range(draws)]


def test_the_grid_grows_only_while_its_top_wins():
    assert grid_of([], 2) == GRID
    rising = {w: 0.1 + 0.01 * k for k, w in enumerate(GRID)}
    assert grid_of(_rows(rising), 2) == GRID + LADDER[:1]
    assert grid_of(_rows(rising, draws=1), 2) == GRID  # not every draw measured yet: no growth
    peaked = {**rising, GRID[-1]: 0.0}
    assert grid_of(_rows(peaked), 2) == GRID


def test_a_short_search_tunes_every_weight_on_the_same_draw(tmp_path, caplog):
    argv = ["--model", "tiny-random", "--tasks", "new_word", "--shots", "1", "--seeds", "100", "--steps", "2",
            "--pool-images", "12", "--selection-images", "4", "--weights", "0", "10",
            "--results", str(tmp_path / "rows.jsonl")]
    rows = main(argv)
    assert sorted(r["weight"] for r in rows) == [0.0, 10.0]
    for row in rows:
        assert 0.0 <= row["map"] <= 1.0 and row["kept_step"] in {0, 2} and row["routes"]
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == 2
    again = main(argv)  # resumed: nothing is tuned twice
    assert len(again) == 2 and len((tmp_path / "rows.jsonl").read_text().splitlines()) == 2


def test_another_method_has_rows_of_its_own(tmp_path):
    """`--method` searches the weight for another method; its rows do not count for the default's."""
    argv = ["--model", "tiny-random", "--tasks", "new_word", "--shots", "1", "--seeds", "100", "--steps", "2",
            "--pool-images", "12", "--selection-images", "4", "--weights", "0",
            "--results", str(tmp_path / "rows.jsonl")]
    text = main([*argv, "--method", "text"])
    assert [(r["prompt"], r["variant"]) for r in text] == [("text", "text")]
    default = main(argv)
    assert [(r["prompt"], r["variant"]) for r in default] == [("sdpt", "")]
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == 2
