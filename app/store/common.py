"""What every part of the store shares: the error a user can fix, name cleaning, id checks and the limits."""
from __future__ import annotations

import unicodedata

from sqlalchemy.orm import Session

PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
           "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075")
MAX_NAME = 100
MAX_CLASSES = 200
SPLITS = ("train", "heldout")


class StoreError(ValueError):
    """A request that cannot be carried out as asked; the message is shown to the user."""


def clean_name(name: str, what: str) -> tuple[str, str]:
    """(display name, duplicate key) for a user-given name: NFKC-normalised, trimmed, any script allowed."""
    text = unicodedata.normalize("NFKC", str(name or "")).strip()
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")  # no control characters
    if not text:
        raise StoreError(f"the {what} name is empty; type a name")
    if len(text) > MAX_NAME:
        raise StoreError(f"the {what} name is {len(text)} characters long; keep it under {MAX_NAME}")
    if not any(ch.isalnum() for ch in text):
        raise StoreError(f"the {what} name {text!r} has no letters or digits; the detector reads names as words")
    return text, text.casefold()


ID_RANGE = (-2**63, 2**63 - 1)  # what the databases' integer keys hold; an id outside it names no row


def id_in_range(key: int) -> bool:
    return ID_RANGE[0] <= key <= ID_RANGE[1]


def _get(session: Session, model, key: int, what: str):
    row = session.get(model, key) if key is not None and id_in_range(int(key)) else None
    if row is None:
        raise StoreError(f"that {what} no longer exists (deleted in another tab?); reload the page")
    return row
