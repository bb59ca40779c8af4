"""The pre-training command line: one CLI for every host, Grounding DINO by default, each host's own options
refused for the other, `sdpt.pretrain_glip` the same CLI with `--host glip`. The hosts' training loops are
replaced by a recorder here; their own tests run them."""
from pathlib import Path
from types import SimpleNamespace

import pytest

import sdpt.pretrain
import sdpt.pretrain_glip


@pytest.fixture
def calls(monkeypatch):
    """The (host, out, keywords) of every pretrain call the CLI makes."""
    real = sdpt.pretrain.pretrainer
    made = []

    def recording(host):
        module = real(host)
        return SimpleNamespace(OPTIONS=module.OPTIONS, DEFAULT_OUT=module.DEFAULT_OUT,
                               pretrain=lambda out, **keywords: made.append((host, out, keywords)) or {})

    monkeypatch.setattr(sdpt.pretrain, "pretrainer", recording)
    return made


def test_grounding_dino_is_the_default_and_gets_only_the_options_given(calls):
    sdpt.pretrain.main(["--steps", "5", "--phrase-positions", "restart", "--stop-at", "3"])
    [(host, out, keywords)] = calls
    assert host == "grounding_dino" and out == Path("assets/sdpt-small")
    assert keywords["steps"] == 5 and keywords["stop_at"] == 3 and keywords["positions"] == "restart"
    assert "fusion_scale" not in keywords and "save_every" not in keywords  # the host's own defaults apply


def test_pretrain_glip_is_the_same_cli_on_glip(calls):
    sdpt.pretrain_glip.main(["--resume", "run1/latest", "--seed", "1", "--save-every", "10", "--eval-images", "50"])
    [(host, out, keywords)] = calls
    assert host == "glip" and out == Path("assets/glip-small")
    assert keywords["resume"] == Path("run1/latest") and keywords["seed"] == 1 and keywords["eval_images"] == 50
    assert keywords["save_every"] == 10


@pytest.mark.parametrize("argv, message", [
    (["--save-every", "10"], "--save-every is for --host glip only"),
    (["--host", "glip", "--fusion-scale", "0.1"], "--fusion-scale is for --host grounding_dino only"),
])
def test_an_option_of_the_other_host_is_refused(calls, capsys, argv, message):
    with pytest.raises(SystemExit) as stopped:
        sdpt.pretrain.main(argv)
    assert stopped.value.code == 2 and message in capsys.readouterr().err and not calls
