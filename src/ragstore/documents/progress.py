"""What an ingest reports while it runs: files and chunks, so that a bar, a log line or a job's status can
say how far it is and how long is left.

Files alone lie: one large file held a bar at "31/372" for nine minutes. Chunks move while a file is
embedded (`Ingestor.ingest(on_chunks=...)` reports them a slice at a time), so the rate and the estimate
come from chunks: `chunks_total` is what is known so far (the chunks of the files read), and grows as files
are read; the estimate scales it by the share of bytes read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["IngestProgress", "ProgressFn"]


@dataclass(frozen=True, slots=True)
class IngestProgress:
    files_done: int  # read, chunked and stored (or failed)
    files_total: int
    chunks_embedded: int  # have their vector (embedded now, or found in the embeddings table)
    chunks_stored: int  # committed
    chunks_known: int  # chunks of the files read so far
    bytes_done: int  # of the files read so far
    bytes_total: int  # of every file of the run
    current: str = ""  # the file being worked on

    def chunks_expected(self) -> int:
        """The chunks the whole run will likely make: those known, scaled by the share of bytes read."""
        if self.bytes_done <= 0 or self.bytes_total <= self.bytes_done:
            return self.chunks_known
        return max(self.chunks_known, round(self.chunks_known * self.bytes_total / self.bytes_done))


ProgressFn = Callable[[IngestProgress], None]
