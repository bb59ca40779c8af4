"""Per-class routing: routes from box counts, held-out choices with a margin, overrides, and its file form."""
import math

import pytest

from sdpt.routing import PROMPTED, ZERO_SHOT, Routing, RoutingError, by_box_count, choose_routes


def test_classes_with_too_few_boxes_go_to_zero_shot_and_unknown_names_too():
    routing = by_box_count(["cell", "debris", "nucleus"], [5, 0, 2], min_boxes=3)
    assert [routing.route_of(n) for n in ["cell", "debris", "nucleus"]] == [PROMPTED, ZERO_SHOT, ZERO_SHOT]
    assert "fewer than 3" in routing.entry("nucleus").reason
    assert routing.route_of("CELL") == PROMPTED  # names match as the project matches them
    assert routing.route_of("added later") == ZERO_SHOT
    assert routing.prompted_mask(["debris", "cell", "added later"]) == [False, True, False]


def test_held_out_ap_flips_a_route_only_past_the_margin():
    routing = by_box_count(["a", "b", "c", "d"], [4, 4, 0, 4], min_boxes=1)
    routing.margin = 0.05
    chosen = choose_routes(routing, {"a": 0.60, "b": 0.50, "c": 0.10, "d": float("nan")},
                           {"a": 0.30, "b": 0.53, "c": 0.40, "d": 0.2})
    assert chosen.route_of("a") == ZERO_SHOT and "zero-shot AP 0.600" in chosen.entry("a").reason
    assert chosen.route_of("b") == PROMPTED  # zero-shot better by 0.03 < margin: keeps its box-count route
    assert chosen.route_of("c") == PROMPTED  # no box, but the prompt is better on held-out by more than the margin
    assert chosen.route_of("d") == PROMPTED and chosen.entry("d").zero_shot_ap is None  # nothing measured
    assert chosen.chosen_on == "held-out images"


def test_an_override_survives_choosing_again_and_the_file_form_round_trips():
    routing = by_box_count(["a", "b"], [4, 4])
    routing.override("a", ZERO_SHOT)
    chosen = choose_routes(routing, {"a": 0.1, "b": 0.1}, {"a": 0.9, "b": 0.9})
    assert chosen.route_of("a") == ZERO_SHOT and chosen.entry("a").overridden
    back = Routing.from_dict(chosen.to_dict())
    assert back == chosen and math.isclose(back.entry("a").prompted_ap, 0.9)
    with pytest.raises(RoutingError, match="not tuned with"):
        routing.override("zebra", PROMPTED)
    with pytest.raises(RoutingError, match="route must be"):
        routing.override("a", "sometimes")
    with pytest.raises(RoutingError, match="routes are"):
        Routing.from_dict({"classes": {"a": {"route": "maybe", "boxes": 1, "reason": ""}}})
