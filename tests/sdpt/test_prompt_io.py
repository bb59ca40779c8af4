"""Prompt files: save -> load reproduces detections; prompts for another model and broken files are refused."""
import json

import pytest
import torch

from sdpt.detector import build_tiny_random
from sdpt.inference import detect
from sdpt.methods import build_method
from sdpt.prompt_io import CONFIG_NAME, WEIGHTS_NAME, PromptFileError, load_prompt, save_prompt


@pytest.fixture()
def saved(detector, shapes_set, tmp_path):
    prompt = build_method("sdpt", detector, {"num_tokens": 4, "gate_init": 0.0})
    with torch.no_grad():
        prompt.prototypes.normal_()
    return prompt, save_prompt(prompt, tmp_path / "prompt", shapes_set.class_names)


def test_save_then_load_reproduces_detections(detector, shapes_set, saved):
    prompt, directory = saved
    images = [s.path for s in shapes_set.samples]
    before = detect(detector, images, shapes_set.class_names, prompt, threshold=0.0, top_k=20)
    loaded, config = load_prompt(directory, detector)
    after = detect(detector, images, shapes_set.class_names, loaded, threshold=0.0, top_k=20)
    for a, b in zip(before, after):
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores)
    assert config["class_names"] == shapes_set.class_names and config["method"] == "sdpt"
    assert config["base_fingerprint"] == detector.fingerprint()
    assert sorted(p.name for p in directory.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME])
    assert (directory / WEIGHTS_NAME).stat().st_size < 64 * 1024


def test_prompt_for_another_model_is_refused(saved):
    _, directory = saved
    other = build_tiny_random(seed=1)
    with pytest.raises(PromptFileError, match="tuned on base model 'tiny-random'"):
        load_prompt(directory, other)


def test_broken_prompt_directories_are_refused(detector, saved, tmp_path):
    _, directory = saved
    with pytest.raises(PromptFileError, match="not a prompt directory"):
        load_prompt(tmp_path / "nowhere", detector)
    (directory / WEIGHTS_NAME).write_bytes(b"\x80\x04pickle? no thanks")
    with pytest.raises(PromptFileError, match="cannot be read as safetensors"):
        load_prompt(directory, detector)
    config = json.loads((directory / CONFIG_NAME).read_text())
    (directory / CONFIG_NAME).write_text(json.dumps({**config, "method": "magic"}))
    with pytest.raises(PromptFileError, match="names method 'magic'"):
        load_prompt(directory, detector)
