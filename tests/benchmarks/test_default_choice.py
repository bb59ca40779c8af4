"""The default's choice: every candidate builds and tunes, a candidate counts only once it is measured on every task
and seed, and the choice file names a real method with its options."""
import json

from benchmarks.default_choice import CANDIDATES, decide, main, scores
from sdpt.methods import METHODS


def test_every_candidate_names_a_method_and_known_options():
    from sdpt.config import TrainConfig, from_dict

    for method, options, changes in CANDIDATES.values():
        from_dict(METHODS[method].config_class, options)  # raises on an unknown option
        assert all(hasattr(TrainConfig(), key) for key in changes)


def test_a_candidate_missing_one_draw_is_not_scored():
    rows = [{"variant": name, "task": task, "seed": seed, "val_map": 0.1 * index}
            for index, name in enumerate(["sdpt", "dual"]) for task in ("a", "b") for seed in (0, 1)]
    assert scores(rows, ["a", "b"], [0, 1]) == {"sdpt": 0.0, "dual": 0.1}
    assert scores(rows[:-1], ["a", "b"], [0, 1]) == {"sdpt": 0.0}


def test_quick_run_writes_its_choice(tmp_path):
    chosen = main(["--model", "tiny-random", "--quick", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "default_choice.json").read_text())
    assert written["candidate"] == chosen and written["method"] in METHODS
    assert (tmp_path / "default_choice_1shot.md").read_text().count("\n") == 4  # header, rule, two candidates


def test_the_default_is_decided_over_every_shot_count(tmp_path):
    (tmp_path / "default_choice_5shot.json").write_text(json.dumps(
        {"shots": 5, "best": "sdpt", "means": {"sdpt": 0.30, "dual": 0.29, "sdpt, augmentation": 0.5}}))
    assert decide(tmp_path)["candidate"] == "sdpt, augmentation"
    # dual ahead at 10 shots by more than it trails at 5: dual; augmentation, unscored at 10 shots, cannot win
    (tmp_path / "default_choice_10shot.json").write_text(json.dumps(
        {"shots": 10, "best": "dual", "means": {"sdpt": 0.30, "dual": 0.33}}))
    decision = decide(tmp_path)
    assert decision["candidate"] == "dual" and decision["method"] == "dual"
    assert decision["validation_map"] == 0.31 and set(decision["by_shots"]) == {"5", "10"}
    assert json.loads((tmp_path / "default_choice.json").read_text()) == decision


def test_the_shipped_default_is_the_chosen_candidate():
    """The library's default method and its default options are what benchmarks/results/default_choice.json says
    won on validation (as tests/benchmarks/test_lr_choice.py holds each method's lr to its choice)."""
    from pathlib import Path

    from sdpt.config import TrainConfig, to_dict
    from sdpt.methods import DEFAULT_METHOD

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "default_choice.json"
    chosen = json.loads(path.read_text())
    assert DEFAULT_METHOD == chosen["method"]
    defaults = to_dict(METHODS[DEFAULT_METHOD].config_class())
    assert all(defaults[key] == value for key, value in chosen["options"].items())
    assert all(getattr(TrainConfig(), key) == value for key, value in chosen["train"].items())
