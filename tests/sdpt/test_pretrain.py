"""The pre-training command line: one CLI for every host, Grounding DINO by default, each host's own options
refused for the other, `sdpt.pretrain_glip` the same CLI with `--host glip`. Each run here is a real two-step
pre-training of the host's small model; the hosts' own tests check what their loops do in depth."""
import json

import pytest

import sdpt.pretrain
import sdpt.pretrain_glip
from sdpt.detector import load_detector

SHORT = ["--steps", "2", "--batch-size", "2", "--eval-every", "2", "--eval-images", "2", "--threads", "1"]


def test_grounding_dino_is_the_default_host(tmp_path):
    sdpt.pretrain.main([*SHORT, "--out", str(tmp_path / "gd"), "--phrase-positions", "restart"])
    assert json.loads((tmp_path / "gd" / "pretrain_result.json").read_text())["step"] == 2
    detector = load_detector(str(tmp_path / "gd"), device="cpu")
    assert detector.host == "grounding_dino" and detector.model.sdpt_phrase_positions == "restart"


def test_pretrain_glip_is_the_same_cli_on_glip(tmp_path):
    sdpt.pretrain_glip.main([*SHORT, "--out", str(tmp_path / "glip"), "--save-every", "1"])
    assert json.loads((tmp_path / "glip" / "pretrain_result.json").read_text())["step"] == 2
    assert load_detector(str(tmp_path / "glip"), device="cpu").host == "glip"
    assert (tmp_path / "glip" / "latest").is_dir()  # --save-every reached the GLIP loop


@pytest.mark.parametrize("argv, message", [
    (["--save-every", "10"], "--save-every is for --host glip only"),
    (["--host", "glip", "--fusion-scale", "0.1"], "--fusion-scale is for --host grounding_dino only"),
])
def test_an_option_of_the_other_host_is_refused_before_anything_runs(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as stopped:
        sdpt.pretrain.main([*argv, "--out", str(tmp_path / "out")])
    assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
