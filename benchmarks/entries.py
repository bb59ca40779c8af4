"""What the few-shot benchmarks tune: the methods, SDPT's other injections as entries of their own, and the method and
options an entry names."""
from __future__ import annotations

METHODS = ["sdpt", "text", "visual", "dual", "upt", "dpt", "fusion", "full"]
# SDPT's other injections, as entries of their own (the GLIP table compares the injections at their own rates): the
# name in --methods, in lr_choice.json and in a row's "method" -> (method, its options).
INJECTIONS = {f"sdpt:{name}": ("sdpt", {"injection": name}) for name in ("paper", "shared_gate")}
ENTRIES = METHODS + list(INJECTIONS)


def entry_method(entry: str) -> tuple[str, dict]:
    """(method, options) of an entry of the table: a method at its defaults, or SDPT with another injection."""
    method, options = INJECTIONS.get(entry, (entry, {}))
    return method, dict(options)
