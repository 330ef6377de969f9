"""What one file may cost to read: pages, nesting, characters, wall-clock time, and the store's shutdown.

A loader is handed a `LoadBudget` and calls `check()` at its checkpoints (every few thousand HTML events,
every PDF page). Python cannot interrupt a thread from outside, so a limit that "really stops the work"
has to be asked for by the work itself; the checkpoints are frequent enough that a stop takes effect
within milliseconds. The same checkpoints honour the store's shutdown event, so a SIGTERM ends a huge
upload in seconds instead of waiting for it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.errors import InvalidInput, PayloadTooLarge, Unavailable

__all__ = ["DEFAULT_LIMITS", "LoadBudget", "LoadLimits", "check_stopping"]


@dataclass(frozen=True, slots=True)
class LoadLimits:
    """Per-file limits (RAGSTORE_MAX_PDF_PAGES, RAGSTORE_MAX_HTML_DEPTH, RAGSTORE_MAX_EXTRACTED_CHARS,
    RAGSTORE_LOAD_TIMEOUT_S); the defaults are the settings' defaults.

    `chunk_tokens` is RAGSTORE_CHUNK_SIZE_TOKENS: a format that decides its own chunks (a CSV's row groups)
    sizes them by it. `max_archive_entries` bounds the members of a zip container (.docx) read at all.
    """

    max_pages: int = 5_000
    max_depth: int = 512
    max_chars: int = 25_000_000
    timeout_s: float = 120.0
    chunk_tokens: int = 256
    max_archive_entries: int = 10_000


DEFAULT_LIMITS = LoadLimits()


def check_stopping(stopping: threading.Event | None, what: str) -> None:
    """Raise Unavailable when the store is shutting down: the work stops and nothing is stored."""
    if stopping is not None and stopping.is_set():
        raise Unavailable(f"{what}: the server is shutting down; nothing was stored, send it again later")


class LoadBudget:
    """One file's budget: the limits, its deadline on `clock`, and the store's shutdown event."""

    __slots__ = ("clock", "deadline", "limits", "max_bytes", "name", "stopping")

    def __init__(
        self,
        name: str,
        limits: LoadLimits = DEFAULT_LIMITS,
        *,
        clock: Clock = SYSTEM_CLOCK,
        stopping: threading.Event | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.name = name
        self.max_bytes = max_bytes  # RAGSTORE_MAX_DOCUMENT_BYTES: also what a compressed file may unpack to
        self.limits = limits
        self.clock = clock
        self.stopping = stopping
        self.deadline = clock.monotonic() + limits.timeout_s

    def check(self) -> None:
        """A checkpoint: stop on shutdown or once the file's time is up."""
        check_stopping(self.stopping, self.name)
        if self.clock.monotonic() > self.deadline:
            raise self._over(
                PayloadTooLarge,
                f"reading it took longer than the limit of {self.limits.timeout_s:g} s",
                "RAGSTORE_LOAD_TIMEOUT_S",
            )

    def chars(self, count: int) -> None:
        if count > self.limits.max_chars:
            raise self._over(
                PayloadTooLarge,
                f"more than {self.limits.max_chars:,} characters of text, over the limit",
                "RAGSTORE_MAX_EXTRACTED_CHARS",
            )

    def pages(self, count: int) -> None:
        if count > self.limits.max_pages:
            raise self._over(
                PayloadTooLarge,
                f"{count:,} pages is over the limit of {self.limits.max_pages:,} pages",
                "RAGSTORE_MAX_PDF_PAGES",
            )

    def depth(self, depth: int, what: str = "HTML elements") -> None:
        if depth > self.limits.max_depth:
            raise self._over(
                InvalidInput,
                f"{what} nested more than {self.limits.max_depth:,} deep, over the limit",
                "RAGSTORE_MAX_HTML_DEPTH",
            )

    def unpacked(self, size: int, what: str) -> None:
        """A compressed file (a .gz, a .docx's zip) may unpack to no more than the largest document accepted."""
        if self.max_bytes is not None and size > self.max_bytes:
            raise self._over(
                PayloadTooLarge,
                f"{what} unpacks to more than the limit of {self.max_bytes:,} bytes",
                "RAGSTORE_MAX_DOCUMENT_BYTES",
            )

    def _over(self, error: type[InvalidInput], what: str, setting: str) -> InvalidInput:
        """The refusal of this file: what was over which setting, and that nothing was stored."""
        return error(
            f"{self.name}: {what} ({setting}); nothing was stored", details={"source": self.name, "limit": setting}
        )
