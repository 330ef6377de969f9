"""The in-process cache: bounded (least recently used first out) with a TTL per entry, thread-safe.

Entries expire by the cache's `clock` (its monotonic reading), so a test ages them with
`ManualClock.advance` instead of sleeping out the TTL.
"""

from __future__ import annotations

import threading

from cachetools import TLRUCache

from ragstore.clock import SYSTEM_CLOCK, Clock

__all__ = ["MemoryCache"]


def _expires(_key: str, value: tuple[float, bytes], now: float) -> float:
    return now + value[0]


class MemoryCache:
    name = "memory"

    def __init__(self, max_entries: int, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.max_entries = max_entries
        self._entries: TLRUCache[str, tuple[float, bytes]] = TLRUCache(
            maxsize=max(max_entries, 1), ttu=_expires, timer=clock.monotonic
        )
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        if self.max_entries == 0:
            return None
        with self._lock:
            found = self._entries.get(key)
        return None if found is None else found[1]

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if self.max_entries == 0 or ttl_s <= 0:
            return
        with self._lock:
            self._entries[key] = (ttl_s, value)

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)

    def status(self) -> dict[str, object]:
        return {"status": "ok", "backend": self.name, "entries": len(self._entries), "max_entries": self.max_entries}
