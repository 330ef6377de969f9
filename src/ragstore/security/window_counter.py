"""The in-process sliding-window counter: what `limits`' SlidingWindowCounter does in memory, in one call.

Why not `limits`' MemoryStorage, which the Redis path still uses through `limits`: on the hot path of a
cached search (~90 µs in process) it cost ~14 µs a request: two calls (the hit, then the window's stats for
the RateLimit-* headers), each building its key string and passing through the storage's error wrappers,
plus a private timer thread we had to disable. This counter answers admitted-or-not, remaining and reset in
one dict lookup under a lock (about 2 µs; `bench/auth_cost.py`). The algorithm is the library's: two fixed
windows, the previous one weighted by how much of it still overlaps the sliding window, so there is no burst
of twice the limit at a window's edge and each bucket is O(1) memory.

Buckets no request touched for two windows are dropped by a sweep once a minute, so callers who never come
back (addresses of anonymous requests) do not accumulate.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

__all__ = ["Count", "SlidingWindowCounter"]

_SWEEP_S = 60.0


@dataclass(frozen=True, slots=True)
class Count:
    allowed: bool
    remaining: int
    reset_s: float  # seconds until the budget is whole again (RateLimit-Reset)
    retry_after_s: float  # when refused: seconds until this cost would fit


class SlidingWindowCounter:
    def __init__(self) -> None:
        # bucket -> [index of its current window, count in it, count in the window before, window length]
        self._buckets: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def hit(self, name: str, amount: int, window_s: float, cost: int = 1, now: float | None = None) -> Count:
        """Take `cost` from `name`'s budget of `amount` per `window_s` if it fits (else take nothing)."""
        now = time.time() if now is None else now
        index = math.floor(now / window_s)
        elapsed = (now - index * window_s) / window_s  # the fraction of the current window gone by
        with self._lock:
            entry = self._buckets.get(name)
            if entry is None or entry[0] < index - 1:
                entry = self._buckets[name] = [index, 0.0, 0.0, window_s]
            elif entry[0] == index - 1:
                entry[0], entry[1], entry[2] = index, 0.0, entry[1]
            current, previous = entry[1], entry[2]
            weighted = previous * (1.0 - elapsed) + current
            allowed = weighted + cost <= amount
            if allowed:
                entry[1] = current = current + cost
                weighted += cost
            if now >= self._next_sweep:
                self._sweep(index, now)
        remaining = max(0, int(amount - weighted))
        reset_s = (1.0 - elapsed) * window_s  # RateLimit-Reset: the end of the current window
        retry = 0.0 if allowed else _retry_after(previous, current, amount, cost, elapsed, window_s)
        return Count(allowed, remaining, reset_s, retry)

    def remaining(self, name: str, amount: int, window_s: float, now: float | None = None) -> int:
        now = time.time() if now is None else now
        index = math.floor(now / window_s)
        elapsed = (now - index * window_s) / window_s
        with self._lock:
            entry = self._buckets.get(name)
            if entry is None or entry[0] < index - 1:
                return amount
            current, previous = (entry[1], entry[2]) if entry[0] == index else (0.0, entry[1])
        return max(0, int(amount - (previous * (1.0 - elapsed) + current)))

    def _sweep(self, index: int, now: float) -> None:
        self._next_sweep = now + _SWEEP_S
        stale = [name for name, entry in self._buckets.items() if entry[0] < math.floor(now / entry[3]) - 1]
        for name in stale:
            del self._buckets[name]

    def __len__(self) -> int:
        return len(self._buckets)


def _retry_after(previous: float, current: float, amount: int, cost: int, elapsed: float, window_s: float) -> float:
    """Seconds until `cost` fits: while the previous window's weight slides out, or in the next window."""
    room = amount - cost - current
    if room >= 0 and previous > 0:  # this window: previous * (1 - f) <= room
        fraction = 1.0 - room / previous
        return max(0.0, (fraction - elapsed) * window_s)
    if amount - cost >= 0 and current > 0:  # the next window, where this window's count is the previous one
        fraction = 1.0 - (amount - cost) / current
        return (1.0 - elapsed) * window_s + max(0.0, fraction) * window_s
    return (1.0 - elapsed) * window_s
