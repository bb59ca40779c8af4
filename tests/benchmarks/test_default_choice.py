"""The default's choice: every candidate builds and tunes, a candidate counts only once it is measured on every task
and seed, and the choice file names a real method with its options."""
import json

from benchmarks.default_choice import CANDIDATES, main, scores
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
    assert (tmp_path / "default_choice.md").read_text().count("\n") == 4  # header, rule, two candidates
