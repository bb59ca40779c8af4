"""Each method's default learning rate is the one the lr search chose (benchmarks/results/lr_choice.json), so the
library, CLI and app tune every method as the benchmark table measured it."""
import json
from pathlib import Path

from benchmarks.lr_search import ENTRIES, METHOD_ORDER
from sdpt.methods import METHODS

CHOICE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "lr_choice.json"


def test_every_method_defaults_to_its_chosen_learning_rate():
    chosen = json.loads(CHOICE.read_text())
    assert set(METHOD_ORDER) <= set(chosen) <= set(ENTRIES), "the lr search must have chosen a value for every method"
    for method in METHOD_ORDER:  # SDPT's other injections (sdpt:paper...) are options of sdpt, not classes
        lr = chosen[method]
        assert METHODS[method].default_lr == lr, f"{method}: default_lr {METHODS[method].default_lr} != chosen {lr}"
