"""What every host's pre-training shares: per-image prompts and the held-out set."""
import random

from sdpt.pretraining import held_out_set, prompt_for
from sdpt.synthetic.grounding import PRETRAIN


def test_prompts_name_every_present_class_and_point_targets_at_them():
    objects = [([0, 0, 10, 10], "red star"), ([5, 5, 20, 20], "blue ring"), ([1, 1, 4, 4], "red star")]
    names, target = prompt_for(objects, ["red star", "blue ring", "green cross", "white circle"], random.Random(0), 3)
    assert {"red star", "blue ring"} <= set(names) and len(names) <= 3
    assert [names[k] for k in target["classes"]] == ["red star", "blue ring", "red star"]


def test_the_held_out_set_is_the_same_images_every_time():
    first, second = held_out_set(2), held_out_set(2)
    assert first.class_names == second.class_names == PRETRAIN.class_names
    assert [s.path.read_bytes() for s in first.samples] == [s.path.read_bytes() for s in second.samples]
    assert first.samples[0].path != second.samples[0].path  # each run writes its own copy
