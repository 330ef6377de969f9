"""The three cache layers and their keys.

Keys (every value is bytes; `<ns>` is RAGSTORE_CACHE_NAMESPACE, `ragstore` by default, so that several
deployments can share one Redis; `v1` is the format, bumped if a value's encoding ever changes):

- L1 query embeddings: `<ns>:v1:emb:<model>:<sha256 of kind + text>` → little-endian float32 vector.
  Document embeddings are not cached here: they already live in SQL (the `embeddings` table).
- L2 search results: `<ns>:v1:<store>:search:<collection id>:<write version>:<sha256 of the request>` → the
  JSON of the hits. The collection's `write_version` rises with every write that can change a result
  (ingest, delete, an operation becoming searchable), so a write makes every older entry unreachable at
  once; old entries age out by TTL and LRU.
- L3 sessions: `<ns>:v1:<store>:session:<id>` → the session's JSON.

`<store>` is the database's identity (`db/identity.py`, hex): ids and versions restart in every new
database, so results computed from one database must never be found by another. Query embeddings depend
only on the model, and are shared by every database.

Each layer looks in the process first, then in Redis when configured (a Redis hit is copied into the
process). A write goes to both.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from ragstore.cache.base import Cache, CacheStats
from ragstore.cache.memory import MemoryCache
from ragstore.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:  # redis-py is an extra: imported only where Redis is configured
    from ragstore.cache.redis import RedisConnection

__all__ = ["FORMAT", "CacheLayers", "TieredCache", "request_digest", "vector_digest"]

FORMAT = "v1"


def request_digest(value: Any) -> str:
    """A stable digest of a JSON-able request (keys sorted), for cache keys."""
    encoded = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:40]


def vector_digest(vector: np.ndarray) -> str:
    """A query vector's digest, from its float32 bytes (no text encoding of 384 numbers on the hot path)."""
    return "v:" + hashlib.sha256(np.ascontiguousarray(vector, dtype="<f4").tobytes()).hexdigest()[:40]


class TieredCache:
    """One layer: the in-process tier in front of the shared tier (if any), with the layer's TTL and counts."""

    def __init__(
        self,
        layer: str,
        local: MemoryCache,
        shared: Cache | None,
        ttl_s: float,
        *,
        namespace: str = "ragstore",
        prefix: str | None = None,
    ) -> None:
        self.layer = layer
        self.prefix = f"{prefix or f'{namespace}:{FORMAT}'}:{layer}"
        self.local = local
        self.shared = shared
        self.ttl_s = ttl_s
        self.stats = CacheStats(layer=layer)

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def key(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])

    def get(self, key: str) -> bytes | None:
        if not self.enabled:
            return None
        value = self.local.get(key)
        if value is not None:
            self.stats.count("hits_local")
            return value
        if self.shared is not None:
            value = self.shared.get(key)
            if value is not None:
                self.local.set(key, value, self.ttl_s)
                self.stats.count("hits_shared")
                return value
        self.stats.count("misses")
        return None

    def set(self, key: str, value: bytes) -> None:
        if not self.enabled:
            return
        self.local.set(key, value, self.ttl_s)
        if self.shared is not None:
            self.shared.set(key, value, self.ttl_s)
        self.stats.count("writes")

    def delete(self, key: str) -> None:
        self.local.delete(key)
        if self.shared is not None:
            self.shared.delete(key)


class CacheLayers:
    def __init__(
        self,
        *,
        max_entries: int,
        embedding_ttl_s: float,
        search_ttl_s: float,
        session_ttl_s: float,
        redis: RedisConnection | None = None,
        namespace: str = "ragstore",
        store: str = "0",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`clock` ages the in-process tiers' entries (Redis keeps its own TTLs on its own clock)."""
        self.redis = redis
        shared: Cache | None = None
        if redis is not None:
            from ragstore.cache.redis import RedisCache

            shared = RedisCache(redis)
        ns = namespace
        self.embeddings = TieredCache(
            "emb", MemoryCache(max_entries, clock=clock), shared, embedding_ttl_s, namespace=ns
        )
        mine = f"{namespace}:{FORMAT}:{store}"
        self.search = TieredCache("search", MemoryCache(max_entries, clock=clock), shared, search_ttl_s, prefix=mine)
        self.sessions = TieredCache(
            "session", MemoryCache(max_entries, clock=clock), shared, session_ttl_s, prefix=mine
        )

    @property
    def layers(self) -> dict[str, TieredCache]:
        return {"embeddings": self.embeddings, "search": self.search, "sessions": self.sessions}

    def stats(self) -> dict[str, dict[str, int]]:
        return {name: layer.stats.as_dict() for name, layer in self.layers.items()}

    def status(self) -> dict[str, object]:
        shared: dict[str, object] | None = self.redis.status() if self.redis is not None else None
        return {
            "status": "ok" if shared is None else shared["status"],
            "backend": "memory" if shared is None else "memory+redis",
            "redis": shared,
            "layers": self.stats(),
        }
