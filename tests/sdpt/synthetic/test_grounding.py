"""The synthetic grounding data: reproducible, valid COCO, and the held-out concepts really held out."""
import json
import random

from sdpt.data import load_coco
from sdpt.synthetic.grounding import PRETRAIN, PRETRAIN_COLOURS, PRETRAIN_SHAPES, TASKS, make_scene, write_coco


def test_same_seed_same_scenes(tmp_path):
    first = write_coco(tmp_path / "a", PRETRAIN, 5, seed=3)
    second = write_coco(tmp_path / "b", PRETRAIN, 5, seed=3)
    assert json.loads(first.read_text()) == json.loads(second.read_text())
    assert (tmp_path / "a/images/00004.png").read_bytes() == (tmp_path / "b/images/00004.png").read_bytes()


def test_written_sets_load_as_valid_coco(tmp_path):
    for name, style in [("pretrain", PRETRAIN), *TASKS.items()]:
        dataset = load_coco(write_coco(tmp_path / name, style, 6, seed=1), tmp_path / name / "images")
        assert dataset.class_names == style.class_names and dataset.num_boxes() >= 6


def test_task_concepts_are_unseen_in_pretraining():
    pretrain_words = set(PRETRAIN_COLOURS) | set(PRETRAIN_SHAPES)
    assert not set(TASKS["new_word"].class_names) & pretrain_words  # new words
    many_words = {w for name in TASKS["many"].class_names for w in name.split()}
    assert many_words - pretrain_words == {"purple", "cyan"}  # new colour words among known shapes
    appearance = TASKS["appearance"]
    assert set(appearance.class_names) <= set(PRETRAIN.class_names)  # known words ...
    assert not set(appearance.fills) & set(PRETRAIN.fills)  # ... in a look pre-training never shows
    assert not set(appearance.backgrounds) & set(PRETRAIN.backgrounds)
    assert len(TASKS["many"].class_names) == 30


def test_scenes_keep_boxes_inside_and_limit_occlusion():
    rng = random.Random(0)
    for _ in range(50):
        image, objects = make_scene(PRETRAIN, rng)
        for (x0, y0, x1, y1), name in objects:
            assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
            assert name in PRETRAIN.classes


def test_command_line_writes_the_same_set_as_the_library(tmp_path):
    from sdpt.synthetic.__main__ import main

    assert main(["new_word", "--images", "3", "--seed", "5", "--out", str(tmp_path / "cli")]) == 0
    library = write_coco(tmp_path / "lib", TASKS["new_word"], 3, seed=5)
    assert (tmp_path / "cli" / "annotations.json").read_text() == library.read_text()
