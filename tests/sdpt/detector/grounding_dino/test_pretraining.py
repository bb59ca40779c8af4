"""Pre-training the small Grounding DINO: a short run writes a loadable directory that records its phrase
numbering, stops where told, and resuming switches an old-numbering checkpoint over."""
import json

from sdpt.detector import load_detector
from sdpt.detector.grounding_dino.pretraining import pretrain
from sdpt.detector.grounding_dino.small_model import MARKER_FILE


def test_short_run_writes_a_loadable_model_and_resume_switches_numbering(tmp_path):
    first = pretrain(tmp_path / "first", steps=10, batch_size=2, eval_every=100, eval_images=2, stop_at=2,
                     positions="restart")
    assert first["step"] == 2  # stopped at --stop-at, evaluated there
    assert json.loads((tmp_path / "first" / MARKER_FILE).read_text())["phrase_positions"] == "restart"
    second = pretrain(tmp_path / "second", steps=1, batch_size=2, eval_every=100, eval_images=2,
                      resume=tmp_path / "first")
    assert second["step"] == 1
    assert json.loads((tmp_path / "second" / MARKER_FILE).read_text())["phrase_positions"] == "from_one"
    assert load_detector(str(tmp_path / "second"), device="cpu").model.sdpt_phrase_positions == "from_one"
