"""What the Tune tab says of each method, in one line: what trains, how many parameters, and what the few-shot
benchmark measured for it (mAP gain over zero-shot and forgetting of other class names).

The figures come from one card per host, which `python -m benchmarks.few_shot --out DIR` writes to DIR/method_card.json:
the small Grounding DINO's in `benchmarks/results/`, the small GLIP's in `benchmarks/results/glip/`. The app shows the
card of the loaded model's host only: another host's parameter counts and gains are not true of this model. Without a
card for the host the lines carry no figures.
"""
from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
CARD_FILES = {"grounding_dino": RESULTS / "method_card.json", "glip": RESULTS / "glip" / "method_card.json"}

WHAT_TRAINS = {
    "sdpt": "SDPT: prototype tokens shared by both streams of the fusion attention",
    "text": "text context tokens before each class name (CoOp)",
    "visual": "visual tokens for the fusion attention (VPT)",
    "dual": "independent text and visual tokens",
    "upt": "one shared prompt mapped to both streams (UPT)",
    "dpt": "text context + class-aware visual prompts (DPT)",
    "fusion": "fine-tunes the fusion layers' attention (large file)",
    "full": "fine-tunes every weight (largest file, slowest)",
}


@lru_cache(maxsize=4)
def benchmark_card(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:  # a broken file must not stop the app; the lines then lack figures
        logger.warning("cannot read %s (%s); method lines show no benchmark figures", path, error)
        return {}


def card_for(host: str, files: dict[str, Path] = CARD_FILES) -> dict:
    """The benchmark card measured on `host` (a card that says another host, or none, is not shown)."""
    path = files.get(host)
    card = benchmark_card(path) if path is not None else {}
    return card if card.get("host") == host else {}


def method_line(name: str, default: str, card: dict) -> str:
    """e.g. "sdpt (default) · SDPT: ... · 5,124 parameters (0.019%) · +0.10 mAP at 10 shots · other class names
    mAP50 0.72 -> 0.15 (benchmark on assets/sdpt-small)"."""
    parts = [f"{name} (default)" if name == default else name, WHAT_TRAINS.get(name, name)]
    figures = card.get("methods", {}).get(name)
    if figures:
        parts += [f"{figures['trainable']:,} parameters ({figures['percent']:.3g}%)",
                  f"{figures['gain']:+.3f} mAP at {card['shots']} shots",
                  f"other class names mAP50 {figures['pretrain_map50_before']:.2f} -> "
                  f"{figures['pretrain_map50_after']:.2f} (benchmark on {card['model'].split('@')[0]})"]
    return " · ".join(parts)


def method_choices(names: list[str], default: str, card: dict) -> list[tuple[str, str]]:
    """(label, value) pairs for the method dropdown, the default first."""
    ordered = [default] + [n for n in names if n != default]
    return [(method_line(name, default, card), name) for name in ordered]
