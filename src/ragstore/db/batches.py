"""Slices for `IN (...)` lists: no request size may reach SQLite's "too many SQL variables"."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

__all__ = ["IN_BATCH", "in_batches"]

T = TypeVar("T")

# Bound parameters per `IN (...)`: under SQLite's smallest limit (999 before 3.32, and what a build may set;
# 32,766 since), leaving room for the statement's other parameters, and large enough that the round trips
# cost nothing next to the rows they return.
IN_BATCH = 900


def in_batches(values: Sequence[T], size: int = IN_BATCH) -> Iterator[list[T]]:
    """`values` in slices small enough for one `IN (...)` on any dialect."""
    for start in range(0, len(values), size):
        yield list(values[start : start + size])
