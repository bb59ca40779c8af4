"""Prompt files: save -> load reproduces detections; prompts for another model and broken files are refused."""
import json

import pytest
import torch

from sdpt.detector import build_tiny_random
from sdpt.inference import detect
from sdpt.methods import build_method
from sdpt.prompt_io import CONFIG_NAME, WEIGHTS_NAME, PromptFileError, load_prompt, save_prompt
from tests.prompt_helpers import open_up


@pytest.fixture()
def saved(detector, shapes_set, tmp_path):
    prompt = open_up(build_method("sdpt", detector, {"num_tokens": 4}))
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


def test_a_format_1_prompt_loads_and_detects_as_before(detector):
    """A prompt written by the release before the branch injection (shared-softmax gate, format 1; made by
    tests/fixtures/prompt_format1/make_fixture.py with that release) still loads as what it was, and gives the
    detections that release gave."""
    import json
    from pathlib import Path

    fixture = Path(__file__).parents[1] / "fixtures" / "prompt_format1"
    expected = json.loads((fixture / "expected_detections.json").read_text())
    prompt, config = load_prompt(fixture / "prompt", detector)
    assert config["format_version"] == 1 and prompt.config.injection == "shared_gate"
    assert {name for name, _ in prompt.named_parameters()} == {"prototypes", "gates"}
    found = detect(detector, [fixture / "image.png"], expected["class_names"], prompt,
                   threshold=expected["threshold"], top_k=expected["top_k"])[0]
    assert found.classes.tolist() == expected["classes"]
    assert torch.allclose(found.scores, torch.tensor(expected["scores"]), atol=1e-5)
    assert torch.allclose(found.boxes, torch.tensor(expected["boxes"]), atol=1e-3)
    zero_shot = detect(detector, [fixture / "image.png"], expected["class_names"], None,
                       threshold=expected["threshold"], top_k=expected["top_k"])[0]
    assert not torch.allclose(zero_shot.scores, found.scores, atol=1e-2)  # the old prompt does act


def test_a_prompt_from_a_newer_release_is_refused_with_what_to_do(saved):
    _, directory = saved
    config = json.loads((directory / CONFIG_NAME).read_text())
    config["format_version"] = 99
    (directory / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(PromptFileError, match="update the app"):
        load_prompt(directory, detector=None)


def test_routing_is_saved_and_an_older_file_routes_every_class_to_the_prompt(detector, shapes_set, saved, tmp_path):
    from sdpt.prompt_io import FORMAT_VERSION, save_routing
    from sdpt.routing import PROMPTED, ZERO_SHOT, by_box_count

    prompt, directory = saved  # saved without a routing, as files before format 3 were
    loaded, config = load_prompt(directory, detector)
    assert loaded.routing is None and "routing" not in config  # every class prompted, exactly as before
    prompt.routing = by_box_count(shapes_set.class_names, [3, 0])
    routed_dir = save_prompt(prompt, tmp_path / "routed", shapes_set.class_names)
    loaded, config = load_prompt(routed_dir, detector)
    assert config["format_version"] == FORMAT_VERSION == 4 and config["host"] == "grounding_dino"
    assert [loaded.routing.route_of(n) for n in shapes_set.class_names] == [PROMPTED, ZERO_SHOT]
    loaded.routing.override(shapes_set.class_names[1], PROMPTED)
    save_routing(routed_dir, loaded.routing)
    again, _ = load_prompt(routed_dir, detector)
    assert again.routing.route_of(shapes_set.class_names[1]) == PROMPTED and again.routing.entry(
        shapes_set.class_names[1]).overridden
    broken = json.loads((routed_dir / CONFIG_NAME).read_text())
    broken["routing"]["classes"][shapes_set.class_names[0]]["route"] = "maybe"
    (routed_dir / CONFIG_NAME).write_text(json.dumps(broken))
    with pytest.raises(PromptFileError, match="routes are"):
        load_prompt(routed_dir, detector)
