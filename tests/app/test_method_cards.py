"""Method lines of the Tune tab: the benchmark's figures of the loaded model's host when its card exists, a plain
line when it does not, and never another host's figures."""
import json

from app.method_cards import CARD_FILES, benchmark_card, card_for, method_choices, method_line


def test_line_carries_the_benchmark_figures(tmp_path):
    card = {"model": "assets/sdpt-small@0123456789ab", "host": "grounding_dino", "shots": 10,
            "methods": {"sdpt": {"trainable": 5124, "percent": 0.0192, "gain": 0.101,
                                 "pretrain_map50_before": 0.718, "pretrain_map50_after": 0.15}}}
    line = method_line("sdpt", "sdpt", card)
    assert line.startswith("sdpt (default) · SDPT")
    assert "5,124 parameters (0.0192%)" in line and "+0.101 mAP at 10 shots" in line and "0.72 -> 0.15" in line
    assert line.endswith("(benchmark on assets/sdpt-small)")
    assert method_line("text", "sdpt", card) == "text · text context tokens before each class name (CoOp)"


def test_missing_or_broken_card_gives_lines_without_figures(tmp_path):
    assert benchmark_card.__wrapped__(tmp_path / "none.json") == {}
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert benchmark_card.__wrapped__(broken) == {}
    assert json.dumps(method_line("full", "sdpt", {})) and "parameters" not in method_line("full", "sdpt", {})


def test_a_host_never_shows_another_hosts_card(tmp_path):
    """GLIP's SDPT has twice the small Grounding DINO's parameters: the Grounding DINO card's line would be false."""
    gd, glip = tmp_path / "gd.json", tmp_path / "glip.json"
    gd.write_text(json.dumps({"model": "assets/sdpt-small@1", "host": "grounding_dino", "shots": 10, "methods": {}}))
    glip.write_text(json.dumps({"model": "assets/glip-small@2", "host": "glip", "shots": 10, "methods": {}}))
    assert card_for("glip", {"grounding_dino": gd, "glip": glip})["model"] == "assets/glip-small@2"
    assert card_for("glip", {"grounding_dino": gd, "glip": gd}) == {}  # a card that says another host
    assert card_for("glip", {"grounding_dino": gd}) == {}
    assert card_for("grounding_dino", {"grounding_dino": gd})["host"] == "grounding_dino"


def test_the_shipped_cards_say_their_host():
    for host, path in CARD_FILES.items():
        if path.is_file():
            assert json.loads(path.read_text())["host"] == host, path


def test_choices_put_the_default_first():
    values = [value for _, value in method_choices(["text", "sdpt", "full"], "sdpt", {})]
    assert values == ["sdpt", "text", "full"]


def test_the_tune_tab_offers_every_method_with_its_card_line_and_the_librarys_default():
    from app import settings
    from app.ui import tuning
    from sdpt.methods import DEFAULT_METHOD, METHODS

    assert settings.DEFAULT_METHOD == DEFAULT_METHOD  # the app follows the library, it does not name its own
    for host in ("grounding_dino", "glip"):
        choices = tuning.method_choices(host)
        assert choices[0][1] == DEFAULT_METHOD and sorted(value for _, value in choices) == sorted(METHODS)
        assert all(label == method_line(value, DEFAULT_METHOD, card_for(host)) for label, value in choices)
        assert choices[0][0].startswith(f"{DEFAULT_METHOD} (default)")
