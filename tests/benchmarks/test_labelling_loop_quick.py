"""The loop benchmark's simulated reviewer on the tiny detector, one round: its accounting adds up and it ends with
exactly the ground truth confirmed."""
from benchmarks.labelling_loop import run_loop, table
from app.example import example_scenes


def test_one_round_of_the_loop_confirms_exactly_the_ground_truth(detector):
    train_truth = sum(len(objects) for _n, split, labelled, _i, objects in example_scenes() if split == "train")
    first, after = run_loop("tiny-random", detector, "latest prompt", steps=1, rounds=1, threshold=0.05)
    assert first["images"] == 40 and first["round"] == 1 and after["round"] == "after"
    assert first["accepted"] + first["rejected"] == first["suggested"] > 0
    assert first["accepted"] + first["drawn"] == train_truth - first["confirmed_boxes"]
    assert after["confirmed_boxes"] == train_truth
    assert 0.0 <= first["heldout_map"] <= first["heldout_map50"] <= 1.0
    assert "| latest prompt | 1 |" in table([first, after])
