"""How `ragstore ingest` shows its progress: chunks as well as files, a rate and a time left.

A bar that counts files alone stood at "31/372" for nine minutes on one large file, and a run whose
output is not a terminal printed nothing until the end. Chunks move while a file is embedded, so the rate
(chunks/s) and the estimate (chunks still expected / rate) come from them. In a terminal: a rich bar on
stderr, redrawn as the numbers change. Otherwise: one plain line every `interval_s` seconds (on the
injected clock) and one at the end, the same numbers, so a log of a long run says how far it got.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.documents.progress import IngestProgress

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["IngestView", "describe"]


def _duration(seconds: float) -> str:
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def describe(p: IngestProgress, elapsed_s: float) -> str:
    """The numbers of a progress report as one line: files, chunks embedded and stored, rate, time left."""
    rate = p.chunks_embedded / elapsed_s if elapsed_s > 0 else 0.0
    expected = p.chunks_expected()
    left = max(0, expected - p.chunks_embedded)
    if p.files_done >= p.files_total and p.chunks_stored >= expected:
        eta = "done"
    elif p.files_done >= p.files_total and left == 0:
        eta = "storing"
    elif rate > 0 and expected:
        eta = f"~{_duration(left / rate)} left"
    else:
        eta = "time left unknown"
    return (
        f"files {p.files_done}/{p.files_total}, chunks embedded {p.chunks_embedded}/{expected}, "
        f"stored {p.chunks_stored}, {rate:.1f} chunks/s, {_duration(elapsed_s)} elapsed, {eta}"
    )


@dataclass
class IngestView:
    """Receives `IngestProgress` reports (it is the run's `progress=`); `close()` at the end."""

    console: Console
    terminal: bool
    interval_s: float = 5.0
    clock: Clock = SYSTEM_CLOCK
    _start: float = field(init=False)
    _last_line: float = field(init=False)
    _last: IngestProgress | None = field(default=None, init=False)
    _printed: IngestProgress | None = field(default=None, init=False)  # the last report written as a line
    _bar: Any = field(default=None, init=False)
    _task: Any = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._start = self._last_line = self.clock.monotonic()
        if self.terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bar = Progress(
                TextColumn("ingesting"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[line]}"),
                console=self.console,
                get_time=self.clock.monotonic,
            )
            self._task = self._bar.add_task("ingesting", total=None, line="")
            self._bar.start()

    def __call__(self, p: IngestProgress) -> None:
        self._last = p
        now = self.clock.monotonic()
        if self._bar is not None:
            self._bar.update(
                self._task, completed=p.files_done, total=p.files_total, line=self._numbers(p, now - self._start)
            )
        elif now - self._last_line >= self.interval_s:
            self._last_line = now
            self._printed = p
            self.console.print(describe(p, now - self._start), highlight=False, markup=False, soft_wrap=True)

    def close(self) -> None:
        """Stop the bar; without a terminal, the final numbers as a last line (unless just printed)."""
        if self._bar is not None:
            self._bar.stop()
        elif self._last is not None and self._last != self._printed:
            self.console.print(
                describe(self._last, self.clock.monotonic() - self._start),
                highlight=False,
                markup=False,
                soft_wrap=True,
            )

    @staticmethod
    def _numbers(p: IngestProgress, elapsed_s: float) -> str:
        """The bar's text: the line's numbers without the files (the bar shows those)."""
        return describe(p, elapsed_s).split(", ", 1)[1]
