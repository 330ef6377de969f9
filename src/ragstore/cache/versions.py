"""Each collection's write version as this process knows it: the key that makes cached results safe.

Without a working event bus the version is read from SQL on every search (one primary-key lookup), so a
write anywhere is seen at once. With the bus, a process reuses what it read for up to `max_age_s` and
forgets it the moment another process announces a write; `max_age_s` bounds the staleness should an
announcement be lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ragstore.cache.bus import EventBus
from ragstore.clock import SYSTEM_CLOCK, Clock

__all__ = ["CollectionVersions"]


class CollectionVersions:
    def __init__(
        self,
        read: Callable[[int], int],
        bus: EventBus | None = None,
        *,
        max_age_s: float = 1.0,
        local_reads: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._read = read
        self.clock = clock  # ages what was read (`max_age_s`)
        self.bus = bus
        self.local_reads = local_reads  # reading SQL costs no network round trip (SQLite)
        self.max_age_s = max_age_s
        self._known: dict[int, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def current(self, collection_id: int) -> int:
        now = self.clock.monotonic()
        if self.bus is not None and self.bus.healthy:
            known = self._known.get(collection_id)
            if known is not None and now - known[1] < self.max_age_s:
                return known[0]
        version = self._read(collection_id)
        with self._lock:
            self._known[collection_id] = (version, now)
        return version

    def known_without_waiting(self, collection_id: int) -> int | None:
        """The version if it can be had without a network round trip (for the event loop's fast path)."""
        if self.bus is not None and self.bus.healthy:
            known = self._known.get(collection_id)
            if known is not None and self.clock.monotonic() - known[1] < self.max_age_s:
                return known[0]
        return self.current(collection_id) if self.local_reads else None

    def forget(self, collection_id: int | None = None) -> None:
        with self._lock:
            if collection_id is None:
                self._known.clear()
            else:
                self._known.pop(collection_id, None)
