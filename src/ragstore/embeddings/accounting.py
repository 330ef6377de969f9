"""What the embedder did for the request in progress: a tally carried by a contextvar.

The usage log records, per HTTP request, how many embedding calls it caused and how many tokens they cost.
The request is known only far above the embedder (the API's metering middleware), the call only far below
it; a contextvar joins the two without threading a counter through every facade. The middleware opens a
tally with `tallying()`, every usage record an embedder reports is `charge`d to the tally of the context it
runs in (Starlette copies the context into the threads that run sync routes), and the query batcher, which
embeds many requests' queries in one call on its own thread, shares that call out to the tallies of the
requests it served (embeddings/batching.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from ragstore.embeddings.base import UsageRecord

__all__ = ["EmbeddingTally", "charge", "current_tally", "tallying"]


@dataclass(slots=True)
class EmbeddingTally:
    """Embedding calls and tokens one request caused (a call shared by a batch counts once for each)."""

    calls: int = 0
    inputs: int = 0
    tokens: int = 0

    def add(self, calls: int, inputs: int, tokens: int) -> None:
        self.calls += calls
        self.inputs += inputs
        self.tokens += tokens


_tally: ContextVar[EmbeddingTally | None] = ContextVar("ragstore_embedding_tally", default=None)


def current_tally() -> EmbeddingTally | None:
    """The tally of the request in progress (None outside one: the CLI, the scheduler, a worker)."""
    return _tally.get()


@contextmanager
def tallying() -> Iterator[EmbeddingTally]:
    """Count the embedding work done inside the block (and in the threads it hands work to)."""
    tally = EmbeddingTally()
    token = _tally.set(tally)
    try:
        yield tally
    finally:
        _tally.reset(token)


def charge(record: UsageRecord) -> None:
    """Add one reported embedding call to the tally of this context, if a request is being counted."""
    tally = _tally.get()
    if tally is not None:
        tally.add(1, record.inputs, record.tokens)
