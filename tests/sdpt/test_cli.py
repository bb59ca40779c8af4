"""The command line, end to end on tiny-random and a COCO set made on the fly, and its one-line errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdpt.cli import main
from sdpt.detector import build_tiny_random

ROOT = Path(__file__).resolve().parents[2]


def _run(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "sdpt", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)


@pytest.mark.parametrize("model", ["tiny-random", "glip-tiny-random"])
def test_tune_detect_eval_end_to_end(shapes, tmp_path, model):
    annotations, images = shapes
    out = tmp_path / "prompt"
    tuned = _run("tune", "--model", model, "--images", str(images), "--annotations", str(annotations),
                 "--method", "sdpt", "--steps", "4", "--out", str(out), "--device", "cpu")
    assert tuned.returncode == 0, tuned.stderr
    assert "step 4/4" in tuned.stderr and "trainable parameters" in tuned.stderr
    assert (out / "prompt.safetensors").is_file()

    image = sorted(images.glob("*.jpg"))[0]
    detected = _run("detect", "--model", model, "--prompt", str(out), "--classes", "red square,blue circle",
                    "--threshold", "0", str(image), "--json")
    assert detected.returncode == 0, detected.stderr
    result = json.loads(detected.stdout)
    first = result["images"][0]["detections"][0]
    assert set(first) == {"box", "label", "score"} and first["label"] in ("red square", "blue circle")

    evaluated = _run("eval", "--model", model, "--prompt", str(out), "--images", str(images),
                     "--annotations", str(annotations), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    assert 0.0 <= metrics["map"] <= metrics["map50"] <= 1.0 and metrics["images"] == 4
    other = "tiny-random" if model != "tiny-random" else "glip-tiny-random"
    refused = _run("detect", "--model", other, "--prompt", str(out), "--classes", "red square", str(image))
    assert refused.returncode != 0 and "cannot move to another host" in refused.stderr


def _error(capsys, *args):
    code = main(list(args))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def test_missing_and_corrupt_images(capsys, tmp_path):
    code, message = _error(capsys, "detect", "--model", "tiny-random", "--classes", "cat", str(tmp_path / "no.jpg"))
    assert code == 2 and message.startswith("error: image") and "does not exist" in message
    junk = tmp_path / "junk.png"
    junk.write_text("not a png")
    code, message = _error(capsys, "detect", "--model", "tiny-random", "--classes", "cat", str(junk))
    assert code == 2 and "cannot be read as an image" in message


def test_bad_annotations(capsys, shapes, tmp_path):
    annotations, images = shapes
    data = json.loads(annotations.read_text())
    data["annotations"][0]["bbox"] = [0, 0, 9999, 10]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    code, message = _error(capsys, "eval", "--model", "tiny-random", "--images", str(images), "--annotations", str(bad))
    assert code == 2 and "outside" in message
    data = json.loads(annotations.read_text())
    data["categories"] = []
    bad.write_text(json.dumps(data))
    code, message = _error(capsys, "tune", "--model", "tiny-random", "--images", str(images), "--annotations",
                           str(bad), "--steps", "1", "--out", str(tmp_path / "p"))
    assert code == 2 and "no categories" in message
    data = json.loads(annotations.read_text())
    data["annotations"][0]["category_id"] = 42
    bad.write_text(json.dumps(data))
    code, message = _error(capsys, "eval", "--model", "tiny-random", "--images", str(images), "--annotations", str(bad))
    assert code == 2 and "category id 42" in message


def test_prompt_for_another_model_and_local_model_directory(capsys, shapes, tmp_path):
    annotations, images = shapes
    other = tmp_path / "other-model"
    build_tiny_random(seed=7).save_pretrained(other)
    out = tmp_path / "prompt"
    assert main(["tune", "--model", str(other), "--images", str(images), "--annotations", str(annotations),
                 "--steps", "1", "--out", str(out), "--device", "cpu"]) == 0
    code, message = _error(capsys, "eval", "--model", "tiny-random", "--prompt", str(out), "--images", str(images),
                           "--annotations", str(annotations))
    assert code == 2 and f"load it with --model {other}" in message


def test_unreachable_hub_id_offline_names_the_way_out(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, message = _error(capsys, "detect", "--model", "IDEA-Research/grounding-dino-tiny", "--classes", "cat",
                           "x.jpg")
    assert code == 2 and "tiny-random" in message and "offline" in message


def test_no_classes(capsys, shapes):
    image = sorted(shapes[1].glob("*.jpg"))[0]
    code, message = _error(capsys, "detect", "--model", "tiny-random", str(image))
    assert code == 2 and "no classes" in message
    code, message = _error(capsys, "detect", "--model", "tiny-random", "--classes", " , ", str(image))
    assert code == 2 and "no classes" in message


def test_bad_options(capsys, shapes, tmp_path):
    annotations, images = shapes
    common = ["tune", "--model", "tiny-random", "--images", str(images), "--annotations", str(annotations),
              "--steps", "1", "--out", str(tmp_path / "p")]
    code, message = _error(capsys, *common, "--layers", "9")
    assert code == 2 and "layer 9 does not exist" in message
    code, message = _error(capsys, *common, "--weight-decay", "-1")
    assert code == 2 and "weight decay must be in [0, 10)" in message
    with pytest.raises(SystemExit) as exit_info:  # argparse: usage error
        main(common + ["--layers", "x"])
    assert exit_info.value.code == 2
