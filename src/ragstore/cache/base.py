"""The Cache contract, and the hit/miss counts every layer keeps.

Values are bytes: a layer never pickles, so a cache shared in Redis can be read by any version of ragstore
that understands the key's `v1` namespace, and never runs code it finds there.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ragstore.telemetry import CACHE_REQUESTS

__all__ = ["Cache", "CacheStats"]


@runtime_checkable
class Cache(Protocol):
    name: str

    def get(self, key: str) -> bytes | None:
        """The value, or None when absent, expired, or the backend is unreachable (never an error)."""

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store a value for `ttl_s` seconds. A failure to store is logged, never raised."""

    def delete(self, key: str) -> None:
        """Remove a key if present."""

    def status(self) -> dict[str, object]:
        """ok / degraded, with the reason, for the health report."""


_HIT_SOURCE = {"hits_local": "hit_local", "hits_shared": "hit_shared"}


@dataclass
class CacheStats:
    """Hits and misses of one layer, by where the hit came from."""

    hits_local: int = 0
    hits_shared: int = 0
    misses: int = 0
    writes: int = 0
    layer: str = ""  # the metrics' label (telemetry.CACHE_REQUESTS); "" counts no metric
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)
        if self.layer and what != "writes":
            CACHE_REQUESTS.labels(self.layer, "miss" if what == "misses" else _HIT_SOURCE[what]).inc()

    def as_dict(self) -> dict[str, int]:
        return {
            "hits": self.hits_local + self.hits_shared,
            "hits_local": self.hits_local,
            "hits_shared": self.hits_shared,
            "misses": self.misses,
            "writes": self.writes,
        }
