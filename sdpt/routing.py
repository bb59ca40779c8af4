"""Per-class routing: which model answers for each class of a prompt, the prompted one or the zero-shot one.

A tuned prompt can make a class worse than the frozen detector found it (a class with too few training boxes, or
one that the prompt pulled away while learning others). A `Routing` records, per class name, which model detects
it, why, and the figures behind that choice; it is saved in the prompt file and honoured by `sdpt.inference`.

Rules, in order:
- a class the prompt was not tuned with (added to the project later) goes to zero-shot;
- a route set by a person stays as set;
- where both models were scored on held-out images, the class goes to the other model than its box-count route
  only when that one's AP is higher by more than `margin` (so noise does not flip it);
- otherwise a class with fewer than `min_boxes` confirmed training boxes goes to zero-shot, the rest to the prompt.
"""
from __future__ import annotations

import math
import unicodedata
from dataclasses import asdict, dataclass, field

PROMPTED, ZERO_SHOT = "prompt", "zero-shot"
ROUTES = (PROMPTED, ZERO_SHOT)
# Not yet searched on validation draws (BENCHMARKS.md, "Never worse than zero-shot", says so): 1 sends exactly the
# classes nobody labelled to zero-shot; where validation or held-out images exist, each class is then routed on them,
# which decides more than k does. The margin is about the spread of one class's AP between seeds on 20 images.
DEFAULT_MIN_BOXES = 1
DEFAULT_MARGIN = 0.02


class RoutingError(ValueError):
    """A routing that cannot be used; the message says what to fix."""


def name_key(name: str) -> str:
    return unicodedata.normalize("NFKC", str(name)).strip().casefold()


@dataclass
class ClassRoute:
    """Where one class goes and why."""

    route: str
    boxes: int  # confirmed training boxes the prompt was tuned with
    reason: str
    zero_shot_ap: float | None = None  # held-out AP of each model, where it was measured
    prompted_ap: float | None = None
    overridden: bool = False  # set by a person; kept when routes are chosen again


@dataclass
class Routing:
    """Routes by class name (matched case- and Unicode-form-insensitively); unknown names go to zero-shot."""

    classes: dict[str, ClassRoute] = field(default_factory=dict)
    min_boxes: int = DEFAULT_MIN_BOXES
    margin: float = DEFAULT_MARGIN
    chosen_on: str = "training boxes"  # what the routes were chosen on, for the page

    def route_of(self, name: str) -> str:
        entry = self.entry(name)
        return ZERO_SHOT if entry is None else entry.route

    def entry(self, name: str) -> ClassRoute | None:
        key = name_key(name)
        for known, entry in self.classes.items():
            if name_key(known) == key:
                return entry
        return None

    def prompted_mask(self, class_names: list[str]) -> list[bool]:
        return [self.route_of(name) == PROMPTED for name in class_names]

    def override(self, name: str, route: str) -> None:
        """A person's choice for one class; kept when routes are chosen again."""
        if route not in ROUTES:
            raise RoutingError(f"route must be one of {list(ROUTES)}, not {route!r}")
        entry = self.entry(name)
        if entry is None:
            raise RoutingError(f"the prompt was not tuned with a class {name!r}; it is detected zero-shot")
        entry.route, entry.overridden = route, True
        entry.reason = f"set by hand to {route}"

    def to_dict(self) -> dict:
        return {"min_boxes": self.min_boxes, "margin": self.margin, "chosen_on": self.chosen_on,
                "classes": {name: asdict(entry) for name, entry in self.classes.items()}}

    @classmethod
    def from_dict(cls, values: dict) -> "Routing":
        try:
            classes = {str(name): ClassRoute(**entry) for name, entry in dict(values.get("classes", {})).items()}
            routing = cls(classes, int(values.get("min_boxes", DEFAULT_MIN_BOXES)),
                          float(values.get("margin", DEFAULT_MARGIN)), str(values.get("chosen_on", "training boxes")))
        except (TypeError, ValueError, AttributeError) as error:
            raise RoutingError(f"the routing is malformed ({error})") from error
        for name, entry in routing.classes.items():
            if entry.route not in ROUTES:
                raise RoutingError(f"class {name!r} has route {entry.route!r}; routes are {list(ROUTES)}")
        return routing


def by_box_count(class_names: list[str], box_counts: list[int], min_boxes: int = DEFAULT_MIN_BOXES,
                 margin: float = DEFAULT_MARGIN) -> Routing:
    """Routes from the training boxes alone: fewer than `min_boxes` -> zero-shot, else the prompt."""
    if min_boxes < 0:
        raise RoutingError(f"min_boxes must be 0 or more, not {min_boxes}")
    classes = {}
    for name, count in zip(class_names, box_counts):
        if count < min_boxes:
            reason = f"{count} training box{'es' if count != 1 else ''}, fewer than {min_boxes}"
            classes[name] = ClassRoute(ZERO_SHOT, int(count), reason)
        else:
            classes[name] = ClassRoute(PROMPTED, int(count), f"{count} training box{'es' if count != 1 else ''}")
    return Routing(classes, min_boxes, margin)


def _usable(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def choose_routes(routing: Routing, zero_shot_ap: dict[str, float], prompted_ap: dict[str, float],
                  chosen_on: str = "held-out images") -> Routing:
    """A new routing from measured per-class AP of both models (the prompt with every class prompted).

    A class keeps its box-count route unless the other model is better by more than the margin; a person's
    override is kept (its APs are updated)."""
    chosen = Routing({}, routing.min_boxes, routing.margin, chosen_on)
    for name, entry in routing.classes.items():
        zero, tuned = zero_shot_ap.get(name), prompted_ap.get(name)
        new = ClassRoute(entry.route, entry.boxes, entry.reason, zero if _usable(zero) else None,
                         tuned if _usable(tuned) else None, entry.overridden)
        if not entry.overridden:
            base = PROMPTED if entry.boxes >= routing.min_boxes else ZERO_SHOT
            new.route = base
            new.reason = by_box_count([name], [entry.boxes], routing.min_boxes).classes[name].reason
            if new.zero_shot_ap is not None and new.prompted_ap is not None:
                if base == PROMPTED and new.zero_shot_ap > new.prompted_ap + routing.margin:
                    new.route = ZERO_SHOT
                    new.reason = (f"zero-shot AP {new.zero_shot_ap:.3f} > prompted {new.prompted_ap:.3f} "
                                  f"(+{routing.margin}) on {chosen_on}")
                elif base == ZERO_SHOT and new.prompted_ap > new.zero_shot_ap + routing.margin:
                    new.route = PROMPTED
                    new.reason = (f"prompted AP {new.prompted_ap:.3f} > zero-shot {new.zero_shot_ap:.3f} "
                                  f"(+{routing.margin}) on {chosen_on}")
        chosen.classes[name] = new
    return chosen


__all__ = ["PROMPTED", "ZERO_SHOT", "ROUTES", "DEFAULT_MIN_BOXES", "DEFAULT_MARGIN", "ClassRoute", "Routing",
           "RoutingError", "by_box_count", "choose_routes", "name_key"]
