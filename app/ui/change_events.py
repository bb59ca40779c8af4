"""One change listener per component that several parts of the page follow (the project picker): the parts register
what they do when it changes, and `bind` wires them as a single listener.

Why: gradio 6 gives `.change` the trigger mode "always_last". When the component changes again while its listeners
are still running, the page defers the second change, and when a deferred listener finishes, the page (gradio 6.31's
Blocks dispatcher) replays the whole change event: every listener of it, not only the one deferred. With two or more
listeners of different durations they keep deferring and replaying each other, a refresh loop that never ends. CI saw
it: after "create project" followed the page load's own change, the page stayed busy for minutes. With one listener
the replay is that listener alone, once, with the latest value, which is what "always_last" promises.
(trigger_mode="multiple" also stops the loop, but then two quick changes run side by side, the app allows 16 at
once, and the older answer can land last.) tests/app/test_change_events.py checks the built page and a real browser.
"""
from __future__ import annotations

import logging

import gradio as gr

from app.ui.messages import USER_ERRORS
from app.ui.signed_in import signed_in

logger = logging.getLogger(__name__)


class OneChangeListener:
    """What the page does when `component` changes, collected from its parts and bound as one listener."""

    def __init__(self, component):
        self.component = component
        self.parts: list[tuple] = []  # (fn(ctx, *values), inputs, outputs)
        self.bound = False

    def add(self, fn, inputs: list, outputs: list) -> None:
        """`fn(ctx, *values of inputs)` returns the outputs' updates (one value for one output, else a tuple)."""
        if self.bound:
            raise RuntimeError("add every part before bind(): the listener is already wired")
        self.parts.append((fn, list(inputs), list(outputs)))

    def bind(self, ctx, **options) -> None:
        inputs, outputs = [], []
        for _fn, part_inputs, part_outputs in self.parts:
            inputs += [c for c in part_inputs if not any(c is seen for seen in inputs)]
            for c in part_outputs:
                if any(c is seen for seen in outputs):
                    raise ValueError(f"two parts update {c!r} when {self.component!r} changes: give it one owner")
                outputs.append(c)
        positions = [[next(i for i, seen in enumerate(inputs) if seen is c) for c in part_inputs]
                     for _fn, part_inputs, _outputs in self.parts]

        def on_change(user_ctx, *values):
            updates = []
            for (fn, _inputs, part_outputs), where in zip(self.parts, positions):
                try:
                    result = fn(user_ctx, *(values[i] for i in where))
                except Exception as error:  # one part's failure must not stop the others' updates
                    if not isinstance(error, USER_ERRORS):
                        logger.exception("a change handler failed (%s)", getattr(fn, "__name__", fn))
                    gr.Warning(str(error) if isinstance(error, USER_ERRORS) else
                               f"part of the page could not be refreshed ({type(error).__name__}); reload the page")
                    updates += [gr.skip()] * len(part_outputs)
                    continue
                updates += [result] if len(part_outputs) == 1 else list(result)
            return tuple(updates)

        on_change.__name__ = f"on_{getattr(self.component, 'elem_id', None) or 'component'}_change"
        self.component.change(signed_in(ctx, on_change), inputs, outputs, **options)
        self.bound = True
