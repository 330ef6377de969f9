"""The progress an ingest job records while it runs: documents and chunks done, the rate and an estimate.

Counting documents alone lied (a job of one large file stood at 0/1 until it ended), so the job counts the
chunks too: the total is known before the first is embedded (the handler chunks each document once to count
it, which costs milliseconds beside embedding's seconds), and `DocumentService.add(on_chunks=...)` reports
them as they get vectors and as they commit. Reports come a slice of embeddings at a time; each one is a
database write, so they are throttled to one per `interval_s` of the injected clock, except the milestones
(the start and the end of each batch) that a reader must not miss.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ragstore.clock import Clock
from ragstore.errors import InvalidInput
from ragstore.schemas import INGEST_STATUSES, IngestOutcome, JobProgress, JobProgressState, OutcomeCounts
from ragstore.text.chunking import chunk_text
from ragstore.text.hashing import normalize_text
from ragstore.valid_text import without_nul

__all__ = ["IngestJobTracker", "count_chunks"]

# Where the tracker's snapshots go: (documents done, documents total, the whole progress).
ReportFn = Callable[[int, int, JobProgress], None]


def count_chunks(document: dict[str, Any], *, max_tokens: int, overlap_tokens: int) -> int:
    """The chunks the ingest will store for one document of a job payload (its own chunks, or the text
    chunked as `Ingestor.prepare` chunks it); 0 for a document the ingest will refuse anyway."""
    chunks = document.get("chunks")
    if isinstance(chunks, list):
        return len(chunks)
    text = document.get("text")
    if not isinstance(text, str):
        return 0
    normalized = normalize_text(without_nul(text))
    if not normalized:
        return 0
    try:
        return len(chunk_text(normalized, max_tokens=max_tokens, overlap_tokens=overlap_tokens))
    except InvalidInput:
        return 0


@dataclass
class IngestJobTracker:
    """Counts one attempt of an ingest job and reports snapshots of it, throttled on `clock`."""

    report_to: ReportFn
    clock: Clock
    documents_total: int
    chunks_total: int
    interval_s: float = 1.0
    documents_done: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    _chunks_done: int = 0  # every chunk of the finished batches: embedded and stored (or already stored)
    _batch_chunks: int = 0  # the chunks of the batch in flight: the live counts never pass it
    _embedded: int = 0  # of the batch in flight
    _stored: int = 0
    _started: float = field(init=False)
    _reported: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._started = self.clock.monotonic()

    @property
    def chunks_embedded(self) -> int:
        return self._chunks_done + min(self._embedded, self._batch_chunks)

    @property
    def chunks_stored(self) -> int:
        return self._chunks_done + min(self._stored, self._batch_chunks)

    def begin_batch(self, chunks: int) -> None:
        self._batch_chunks, self._embedded, self._stored = chunks, 0, 0

    def on_chunks(self, what: str, n: int) -> None:
        """`DocumentService.add`'s `on_chunks`: ("embedded" | "stored", how many)."""
        if what == "embedded":
            self._embedded += n
        elif what == "stored":
            self._stored += n
        self.report()

    def end_batch(self, outcomes: Iterable[IngestOutcome]) -> None:
        """A batch committed: its documents are done, and so are all its chunks (an unchanged document's
        were stored before, and no `on_chunks` call counts them)."""
        for outcome in outcomes:
            self.outcomes[outcome.status] += 1
            self.documents_done += 1
        self._chunks_done += self._batch_chunks
        self.begin_batch(0)
        self.report(force=True)

    def snapshot(self, state: JobProgressState = "running") -> JobProgress:
        elapsed = self.clock.monotonic() - self._started
        embedded = self.chunks_embedded
        rate = embedded / elapsed if elapsed > 0 and embedded > 0 else None
        left = max(0, self.chunks_total - embedded)
        eta = 0.0 if left == 0 else (round(left / rate, 1) if rate else None)
        return JobProgress(
            state=state,
            documents_done=self.documents_done,
            documents_total=self.documents_total,
            chunks_embedded=embedded,
            chunks_stored=self.chunks_stored,
            chunks_total=self.chunks_total,
            chunks_per_s=None if rate is None else round(rate, 3),
            eta_s=eta,
            outcomes=OutcomeCounts(**{s: self.outcomes[s] for s in INGEST_STATUSES}),
        )

    def report(self, *, force: bool = False) -> None:
        now = self.clock.monotonic()
        if not force and self._reported is not None and now - self._reported < self.interval_s:
            return
        self._reported = now
        self.report_to(self.documents_done, self.documents_total, self.snapshot())
