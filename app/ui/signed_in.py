"""Binds UI handlers to the signed-in user: `signed_in(ctx, fn)` makes a gradio handler that calls
`fn(user_ctx, *inputs)`, where user_ctx is `ctx` for the user of the request (app/access.py checks against it)."""
from __future__ import annotations

import gradio as gr


def signed_in(ctx, fn):
    # gradio injects the request into a leading parameter annotated gr.Request; the event's inputs follow
    def handler(request: gr.Request, *inputs):
        return fn(ctx.for_request(request), *inputs)

    handler.__name__ = getattr(fn, "__name__", "handler")
    return handler
