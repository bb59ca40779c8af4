"""Early stopping's rule search: each rule picks its step from one tune's validation scores as `EarlyStopping` would,
and a short real run on the tiny random model scores every rule (with and without 0-box promotion) on the selection
images, with a step-0 pick scored as the zero-shot model."""
from benchmarks.stop_rule_search import FULL_SCHEDULE, NO_PROMOTION, RULES, main, picked_step

SCORES = [(0, 0.30), (20, 0.40), (40, 0.39), (60, 0.37), (80, 0.36)]


def test_each_rule_picks_its_step():
    assert picked_step("best step", SCORES, 80, 20) == 20
    assert picked_step("margin 0.02", SCORES, 80, 20) == 40  # the latest within 0.02 of the best
    assert picked_step("margin 0.05", SCORES, 80, 20) == 80
    assert picked_step(FULL_SCHEDULE, SCORES, 80, 20) == 80
    # never below the step-0 score, whatever the margin
    assert picked_step("margin 0.05", [(0, 0.40), (20, 0.42), (40, 0.38)], 40, 20) == 20


def test_a_short_search_scores_every_rule_on_the_selection_images(tmp_path):
    rows = main(["--model", "tiny-random", "--tasks", "new_word", "--shots", "1", "--seeds", "100", "--steps", "4",
                 "--pool-images", "12", "--selection-images", "4", "--results", str(tmp_path / "rows.jsonl")])
    names = {row["method"] for row in rows}
    assert names == {name for rule in RULES for name in (rule, f"{rule}, {NO_PROMOTION}")}
    for row in rows:
        assert 0.0 <= row["map"] <= 1.0 and row["kept_step"] in {0, 4} and row["validation"][0][0] == 0
        if row["kept_step"] == 0:
            assert row["map"] == row["zero_shot_map"]
        if row["method"].endswith(NO_PROMOTION):
            assert row["withheld_map"] == row["zero_shot_withheld_map"]  # nothing without boxes was promoted
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == len(rows)


def test_another_method_and_teacher_are_logged_apart_from_the_default(tmp_path):
    """A per-method search (`--method`, `--teacher`) shares the log file but neither reuses nor hides the default's
    rows: each run resumes only from its own."""
    common = ["--model", "tiny-random", "--tasks", "new_word", "--shots", "1", "--seeds", "100", "--steps", "2",
              "--pool-images", "12", "--selection-images", "4", "--results", str(tmp_path / "rows.jsonl")]
    default = main(common)
    text = main([*common, "--method", "text", "--teacher", "0"])
    assert {row["variant"] for row in default} == {""} and {row["prompt"] for row in default} == {"sdpt"}
    assert {row["variant"] for row in text} == {"text, teacher 0"}
    assert {(row["prompt"], row["teacher"]) for row in text} == {("text", 0.0)}
    assert len(text) == len(default) == 2 * len(RULES)
    lines = (tmp_path / "rows.jsonl").read_text().splitlines()
    assert len(lines) == 4 * len(RULES)
    again = main([*common, "--method", "text", "--teacher", "0"])  # resumed from the log: nothing re-run
    assert sorted((r["method"], r["map"]) for r in again) == sorted((r["method"], r["map"]) for r in text)
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == len(lines)
