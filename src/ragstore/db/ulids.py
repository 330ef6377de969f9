"""Sortable unique ids for rows that appear in URLs (conversations): a ULID's first 48 bits are its creation
time in milliseconds, so ids sort by creation, and its 80 random bits make a neighbour's id unguessable."""

from __future__ import annotations

from datetime import datetime

from ulid import ULID

__all__ = ["new_ulid"]


def new_ulid(at: datetime | None = None) -> str:
    """A new ULID's 26-character text; `at` dates it (the store's clock, so tests can move time)."""
    return str(ULID.from_datetime(at) if at is not None else ULID())
