"""How handlers report to the status bar: one line, marked as done or as a problem to fix."""
from __future__ import annotations

import logging

from app.image_files import ImageRejected
from app.store import StoreError

logger = logging.getLogger(__name__)

USER_ERRORS = (StoreError, ImageRejected, ValueError)


def ok(text: str) -> str:
    return text


def problem(text: str) -> str:
    return f"**Problem:** {text}"


def from_error(error: Exception) -> str:
    if isinstance(error, USER_ERRORS):
        return problem(str(error))
    logger.exception("unexpected error in a UI handler")
    return problem(f"something went wrong ({type(error).__name__}: {error}); nothing was changed - try again")
