"""Pre-training the small GLIP: a stopped run leaves its state in `<out>/latest` and the same call goes on from
there; `resume` starts a new schedule from a saved folder."""
import json
import logging

from sdpt.detector.glip.pretraining import pretrain
from sdpt.detector.glip.small import load_small_glip


def _state(directory):
    return json.loads((directory / "latest" / "training_state.json").read_text())


def test_a_stopped_run_goes_on_from_latest_and_resume_starts_anew(tmp_path, caplog):
    run = {"steps": 2, "batch_size": 2, "eval_every": 100, "eval_images": 2, "save_every": 1}
    first = pretrain(tmp_path / "run", stop_at=1, **run)
    assert first["step"] == 1 and _state(tmp_path / "run")["step"] == 1
    with caplog.at_level(logging.INFO, logger="sdpt.detector.glip.pretraining"):
        going_on = pretrain(tmp_path / "run", **run)
    assert "going on from step 1" in caplog.text
    assert _state(tmp_path / "run")["step"] == 2 and _state(tmp_path / "run")["best"] == going_on
    load_small_glip(tmp_path / "run")  # the best checkpoint is a loadable folder
    fresh = pretrain(tmp_path / "again", steps=1, batch_size=2, eval_every=100, eval_images=2, seed=1,
                     resume=tmp_path / "run")
    assert fresh["step"] == 1  # a new schedule: evaluated at its own first and last step
    assert _state(tmp_path / "again")["step"] == 1 and _state(tmp_path / "again")["seed"] == 1
