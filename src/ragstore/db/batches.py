"""Slices for `IN (...)` lists: no request size may reach SQLite's "too many SQL variables"."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

__all__ = ["IN_BATCH", "in_batches"]

T = TypeVar("T")

# Bound parameters per `IN (...)`: far below SQLite's limit (32,766 since 3.32, 999 before, and a statement
# may carry other parameters), and large enough that the round trips cost nothing next to the rows.
IN_BATCH = 500


def in_batches(values: Sequence[T], size: int = IN_BATCH) -> Iterator[list[T]]:
    """`values` in slices small enough for one `IN (...)` on any dialect."""
    for start in range(0, len(values), size):
        yield list(values[start : start + size])
