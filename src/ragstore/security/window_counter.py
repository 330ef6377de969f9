"""The in-process sliding-window counter: what `limits`' SlidingWindowCounter does in memory, in one call,
with the requests each bucket has in flight (the concurrency cap) beside its counts.

Why not `limits`' MemoryStorage, which the Redis path still uses through `limits`: on the hot path of a
cached search (~100 µs in process) it cost ~14 µs a request: two calls (the hit, then the window's stats for
the RateLimit-* headers), each building its key string and passing through the storage's error wrappers,
plus a private timer thread we had to disable. The algorithm is the library's: two fixed windows, the
previous one weighted by how much of it still overlaps the sliding window, so there is no burst of twice
the limit at a window's edge and each bucket is O(1) memory.

Two ways in. `take` does everything under the lock: the first request of a window, refusals, anonymous
callers. A `Lane` is the hot path of one bucket that a caller holds on to (an API key's, kept with its
principal): it admits a request in a few steps and no lock, because in a server one event loop thread is the
only one that counts. Its steps are atomic under the GIL (`list.append`/`pop` for the requests in flight);
what is not (`+=` on the count) can lose an increment only when two threads count the same bucket in the same
instant, which lets one request more through and never refuses one wrongly. Everything else, a new window
above all, goes through `take`.

Buckets no request touched for two windows and with nothing in flight are dropped by a sweep once a minute,
so callers who never come back (addresses of anonymous requests) do not accumulate; a lane whose bucket
was dropped sends its requests through `take`, which starts the bucket again.
"""

from __future__ import annotations

import math
import threading
import time
from typing import NamedTuple

__all__ = ["ADMITTED", "BUSY", "OVER_LIMIT", "Count", "Lane", "SlidingWindowCounter"]

_SWEEP_S = 60.0
_DROPPED = -2.0  # the window index of a bucket the sweep dropped: no lane's window matches it
_now = time.time
ADMITTED, OVER_LIMIT, BUSY = 0, 1, 2  # `take`'s verdicts
# A bucket's record: [index of its current window, count in it, count in the window before, window length,
# the requests in flight (a list: one item per request, so that entering and leaving are atomic)]
_INDEX, _CURRENT, _PREVIOUS, _WINDOW, _FLIGHT = range(5)


class Count(NamedTuple):  # a tuple, not a frozen dataclass: built on every request, and a tuple is ~5x cheaper
    allowed: bool
    remaining: int
    reset_s: float  # seconds until the budget is whole again (RateLimit-Reset)
    retry_after_s: float  # when refused: seconds until this cost would fit


class Lane:
    """The hot path of one bucket: `enter` admits a request of the current window that fits, and gives the
    RateLimit-* headers of its answer (its slot then held until `leave`); None sends the request to `take`."""

    __slots__ = ("amount", "cap", "limit_header", "record", "window_s")

    def __init__(self, record: list, amount: int, window_s: float, cap: int) -> None:  # type: ignore[type-arg]
        self.record = record
        self.amount = amount
        self.window_s = window_s
        self.cap = cap
        self.limit_header = (b"ratelimit-limit", b"%d" % amount)

    def enter(self, cost: int, now: float | None = None) -> list[tuple[bytes, bytes]] | None:
        record = self.record
        position = (_now() if now is None else now) / self.window_s
        index = position // 1.0
        if record[_INDEX] != index or len(record[_FLIGHT]) >= self.cap:
            return None
        elapsed = position - index
        weighted = record[_PREVIOUS] * (1.0 - elapsed) + record[_CURRENT] + cost
        if weighted > self.amount:
            return None
        record[_CURRENT] += cost
        record[_FLIGHT].append(None)
        return [
            self.limit_header,
            (b"ratelimit-remaining", b"%d" % (self.amount - weighted)),
            (b"ratelimit-reset", b"%d" % ((1.0 - elapsed) * self.window_s + 0.999)),
        ]

    def leave(self) -> None:
        self.record[_FLIGHT].pop()


class SlidingWindowCounter:
    def __init__(self) -> None:
        self._records: dict[str, list] = {}  # type: ignore[type-arg]
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def hit(self, name: str, amount: int, window_s: float, cost: int = 1, now: float | None = None) -> Count:
        """Take `cost` from `name`'s budget of `amount` per `window_s` if it fits (else take nothing)."""
        verdict, remaining, reset_s, retry = self.take(name, amount, window_s, cost, 0, now)
        return Count(verdict == ADMITTED, remaining, reset_s, retry)

    def take(
        self, name: str, amount: int, window_s: float, cost: int, cap: int, now: float | None = None
    ) -> tuple[int, int, float, float]:
        """One request's admission: a slot of the `cap` requests in flight (0: no cap, no slot) and `cost` from
        the budget, or neither. Returns (verdict, remaining, seconds to the window's end, seconds until `cost`
        would fit); a slot taken is given back with `leave`."""
        now = _now() if now is None else now
        position = now / window_s  # in windows since the epoch
        index = position // 1.0
        elapsed = position - index  # the fraction of the current window gone by
        with self._lock:
            record = self._record(name, window_s, index)
            if cap and len(record[_FLIGHT]) >= cap:
                return BUSY, 0, 1.0, 1.0
            current, previous = record[_CURRENT], record[_PREVIOUS]
            weighted = previous * (1.0 - elapsed) + current
            if weighted + cost <= amount:
                record[_CURRENT] = current + cost
                if cap:
                    record[_FLIGHT].append(None)
                if now >= self._next_sweep:
                    self._sweep(now)
                return ADMITTED, max(0, int(amount - weighted - cost)), (1.0 - elapsed) * window_s, 0.0
        remaining = max(0, int(amount - weighted))
        retry = _retry_after(previous, current, amount, cost, elapsed, window_s)
        return OVER_LIMIT, remaining, (1.0 - elapsed) * window_s, retry

    def lane(self, name: str, amount: int, window_s: float, cap: int, now: float | None = None) -> Lane:
        """The hot path of `name`'s bucket, for a caller that counts it often."""
        with self._lock:
            record = self._record(name, window_s, ((_now() if now is None else now) / window_s) // 1.0)
        return Lane(record, amount, window_s, cap)

    def _record(self, name: str, window_s: float, index: float) -> list:  # type: ignore[type-arg]
        """`name`'s record with its windows rolled to `index` (under the lock)."""
        record = self._records.get(name)
        if record is None:
            record = self._records[name] = [index, 0.0, 0.0, window_s, []]
        elif record[_INDEX] < index:  # (a clock that went back counts in the window it is in)
            previous = record[_CURRENT] if record[_INDEX] == index - 1 else 0.0
            record[_INDEX], record[_CURRENT], record[_PREVIOUS], record[_WINDOW] = index, 0.0, previous, window_s
        return record

    def enter(self, name: str, cap: int) -> bool:
        """A slot of the `cap` requests in flight without touching the budget (counted elsewhere: Redis)."""
        with self._lock:
            record = self._records.get(name)
            if record is None:
                record = self._records[name] = [_DROPPED, 0.0, 0.0, 1.0, []]
            if len(record[_FLIGHT]) >= cap:
                return False
            record[_FLIGHT].append(None)
            return True

    def leave(self, name: str) -> None:
        record = self._records.get(name)
        if record is not None and record[_FLIGHT]:
            record[_FLIGHT].pop()

    def in_flight(self, name: str) -> int:
        record = self._records.get(name)
        return 0 if record is None else len(record[_FLIGHT])

    def remaining(self, name: str, amount: int, window_s: float, now: float | None = None) -> int:
        now = time.time() if now is None else now
        index = math.floor(now / window_s)
        elapsed = (now - index * window_s) / window_s
        with self._lock:
            record = self._records.get(name)
            if record is None or record[_INDEX] < index - 1:
                return amount
            current, previous = (
                (record[_CURRENT], record[_PREVIOUS]) if record[_INDEX] == index else (0.0, record[_CURRENT])
            )
        return max(0, int(amount - (previous * (1.0 - elapsed) + current)))

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + _SWEEP_S
        stale = [
            name
            for name, record in self._records.items()
            if record[_INDEX] < (now / record[_WINDOW]) // 1.0 - 1 and not record[_FLIGHT]
        ]
        for name in stale:
            self._records.pop(name)[_INDEX] = _DROPPED

    def __len__(self) -> int:
        return len(self._records)


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
