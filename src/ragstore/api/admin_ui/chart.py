"""The dashboard's charts of the health history, drawn on the server as SVG.

A chart library would be a script from somewhere (the page loads nothing from the internet and runs no
inline script); a line over at most a few thousand minutes is a list of points, which SVG draws natively.
The request rate and latency come from the snapshots' request counters: the difference between two
snapshots is what was answered in between. A counter that went down means the server restarted; that
interval is left as a gap rather than drawn as a negative rate.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ragstore.schemas import HealthSnapshot

__all__ = ["Chart", "dashboard_charts"]

WIDTH, HEIGHT, LEFT, BOTTOM = 640, 140, 48, 18


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    segments: list[str]  # each an SVG `points` attribute: a gap in the data starts a new segment
    top: float  # the value at the top of the plot
    latest: float | None
    start: datetime | None
    end: datetime | None
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: int = BOTTOM

    @property
    def empty(self) -> bool:
        return not self.segments


Point = tuple[datetime, float | None]


def _chart(title: str, unit: str, points: Sequence[Point]) -> Chart:
    values = [v for _, v in points if v is not None]
    if not values:
        return Chart(title, unit, [], 0.0, None, None, None)
    start, end = points[0][0], points[-1][0]
    span = max((end - start).total_seconds(), 1.0)
    top = _nice(max(values))
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - 6
    segments: list[str] = []
    current: list[str] = []
    for moment, value in points:
        if value is None:
            if len(current) > 1:
                segments.append(" ".join(current))
            current = []
            continue
        x = LEFT + plot_w * (moment - start).total_seconds() / span
        y = 6 + plot_h * (1 - (value / top if top else 0))
        current.append(f"{x:.1f},{y:.1f}")
    if len(current) > 1:
        segments.append(" ".join(current))
    elif len(current) == 1:  # one point alone: a short flat mark, so a single snapshot still shows
        at, height = current[0].split(",")
        segments.append(f"{float(at) - 2:.1f},{height} {float(at) + 2:.1f},{height}")
    return Chart(title, unit, segments, top, values[-1], start, end)


def _nice(value: float) -> float:
    """A round number at or above `value` for the top of the axis (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    base = 10.0 ** math.floor(math.log10(value))
    return next(step * base for step in (1, 2, 5, 10) if step * base >= value)


def _rates(snapshots: Sequence[HealthSnapshot]) -> tuple[list[Point], list[Point], list[Point]]:
    """Requests per minute, mean latency (ms) and 5xx per minute between consecutive snapshots."""
    rate: list[Point] = []
    latency: list[Point] = []
    errors: list[Point] = []
    for before, after in itertools.pairwise(snapshots):
        minutes = (after.taken_at - before.taken_at).total_seconds() / 60
        counted = before.requests_total is not None and after.requests_total is not None
        done = (after.requests_total or 0) - (before.requests_total or 0)
        took = (after.request_seconds_total or 0.0) - (before.request_seconds_total or 0.0)
        failed = int(after.request_errors_total or 0) - int(before.request_errors_total or 0)
        if not counted or done < 0 or minutes <= 0:  # no counters yet, or a restart began them again: a gap
            rate.append((after.taken_at, None))
            latency.append((after.taken_at, None))
            errors.append((after.taken_at, None))
            continue
        rate.append((after.taken_at, done / minutes))
        latency.append((after.taken_at, 1000 * took / done if done else None))
        errors.append((after.taken_at, max(failed, 0) / minutes))
    return rate, latency, errors


def dashboard_charts(snapshots: Sequence[HealthSnapshot]) -> list[Chart]:
    rate, latency, errors = _rates(snapshots)

    def series(read: Callable[[HealthSnapshot], float | None]) -> list[Point]:
        return [(s.taken_at, read(s)) for s in snapshots]

    return [
        _chart("Requests", "per minute", rate),
        _chart("Mean request latency", "ms", latency),
        _chart("Server errors (5xx)", "per minute", errors),
        _chart("Database latency", "ms", series(lambda s: s.database_latency_ms)),
        _chart("Outbox pending", "operations", series(lambda s: float(s.outbox_pending))),
        _chart("Resident memory", "MiB", series(lambda s: None if s.rss_bytes is None else s.rss_bytes / 2**20)),
    ]
