"""The lr search's grid grows while a method's best learning rate sits at the top of it, and the choice needs every
value of the grown grid measured on every task."""
from benchmarks.lr_search import PROMPT_GRID, PROMPT_LADDER, choose, grid_of

TASKS = ["a", "b"]


def rows_for(method: str, scores: dict[float, float]) -> list[dict]:
    return [{"method": method, "lr": lr, "task": task, "val_map": score} for lr, score in scores.items() for task in TASKS]


def test_an_interior_best_keeps_the_grid():
    rows = rows_for("sdpt", {lr: 1.0 - abs(lr - 5e-2) for lr in PROMPT_GRID})
    assert grid_of("sdpt", rows, TASKS) == PROMPT_GRID
    assert choose(rows, TASKS)["sdpt"] == 5e-2


def test_a_best_at_the_top_grows_the_grid_and_waits_for_the_new_value():
    rows = rows_for("dual", {lr: lr for lr in PROMPT_GRID})  # best at the top
    assert grid_of("dual", rows, TASKS) == PROMPT_GRID + PROMPT_LADDER[:1]
    assert "dual" not in choose(rows, TASKS)  # the new value is not measured yet
    rows += rows_for("dual", {PROMPT_LADDER[0]: 0.0})  # measured, and worse
    assert grid_of("dual", rows, TASKS) == PROMPT_GRID + PROMPT_LADDER[:1]
    assert choose(rows, TASKS)["dual"] == PROMPT_GRID[-1]


def test_a_partly_measured_top_does_not_grow_the_grid():
    rows = rows_for("text", {lr: lr for lr in PROMPT_GRID})[:-1]  # the top value lacks one task
    assert grid_of("text", rows, TASKS) == PROMPT_GRID


def test_a_best_at_the_bottom_grows_the_grid_downwards():
    from benchmarks.lr_search import PROMPT_LADDER_DOWN

    rows = rows_for("dpt", {lr: -lr for lr in PROMPT_GRID})  # best at the bottom
    assert grid_of("dpt", rows, TASKS) == PROMPT_LADDER_DOWN[:1] + PROMPT_GRID
    rows += rows_for("dpt", {PROMPT_LADDER_DOWN[0]: -1.0})
    assert choose(rows, TASKS)["dpt"] == PROMPT_GRID[0]


def test_a_draw_that_takes_the_whole_pool_leaves_no_validation_and_says_so(tmp_path):
    import pytest

    from benchmarks.few_shot import k_shot
    from benchmarks.lr_search import validation_split
    from sdpt.data import load_coco
    from sdpt.synthetic.grounding import TASKS, write_coco

    pool = load_coco(write_coco(tmp_path, TASKS["many"], 4, 30_000), tmp_path / "images")
    train = k_shot(pool, 10, 0)  # 10 shots of 30 classes: every image of a 4-image pool
    assert len(train) == len(pool)
    with pytest.raises(ValueError, match="raise --pool-images"):
        validation_split(pool, train, 20, 0)
    assert len(validation_split(pool, k_shot(pool, 1, 0), 20, 0)) >= 1


def test_sdpt_injections_are_searched_as_entries_of_their_own(detector):
    """`sdpt:paper` builds SDPT with the paper's injection, is chosen like a method, and the ablation's variant of that
    injection tunes at the entry's chosen rate (not at the default injection's)."""
    import argparse

    from benchmarks.lr_search import ENTRIES, build_entry, injection_entry
    from benchmarks.sdpt_ablation import VARIANTS, split_variant, variant_config

    assert "sdpt:paper" in ENTRIES and "sdpt:shared_gate" in ENTRIES
    assert build_entry("sdpt:paper", detector).config.injection == "paper"
    assert build_entry("sdpt", detector).config.injection != "paper"
    rows = rows_for("sdpt:paper", {lr: -abs(lr - 2e-2) for lr in PROMPT_GRID})
    assert choose(rows, TASKS)["sdpt:paper"] == 2e-2

    args = argparse.Namespace(steps=3, batch_size=1, lrs={"sdpt": 0.1, "sdpt:paper": 0.02})
    paper = split_variant(VARIANTS["injection: appended, ungated (the paper's form)"])
    gate = split_variant(VARIANTS["injection: shared-softmax gate (the previous default)"])
    assert injection_entry("sdpt", paper[0]) == "sdpt:paper"
    assert variant_config(args, 0, paper[1], paper[0]).lr == 0.02
    assert variant_config(args, 0, gate[1], gate[0]).lr == 0.1  # no choice for that entry yet: SDPT's rate
    assert variant_config(args, 0, {}, {}).lr == 0.1
