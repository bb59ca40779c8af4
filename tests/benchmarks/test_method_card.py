"""The Tune tab's figures: each task weighs the same in a method's gain, however many seeds it has."""
from benchmarks.few_shot_report import method_card


def row(task, method, seed, value, after=0.5):
    return {"task": task, "method": method, "shots": 0 if method == "zero-shot" else 10, "seed": seed,
            "map": value, "forgetting_map50": after, "trainable": 10, "percent": 0.1, "lr": 0.1}


def test_gain_is_a_mean_over_tasks_of_means_over_seeds():
    rows = [row("a", "zero-shot", 0, 0.0, 0.7), row("b", "zero-shot", 0, 0.0, 0.7),
            row("a", "sdpt", 0, 0.1, 0.2), row("a", "sdpt", 1, 0.1, 0.2), row("b", "sdpt", 0, 0.3, 0.6)]
    whole = method_card(rows, "model", "glip")
    assert whole["host"] == "glip"
    card = whole["methods"]["sdpt"]
    assert abs(card["gain"] - 0.2) < 1e-9  # not (0.1 + 0.1 + 0.3) / 3
    assert abs(card["pretrain_map50_after"] - 0.4) < 1e-9
    assert card["runs"] == 3 and card["tasks"] == ["a", "b"]
