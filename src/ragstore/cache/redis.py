"""The shared cache in Redis, behind a circuit breaker: Redis being down is a slower service, never an error.

After a failed call the cache stops asking Redis for `retry_after_s` (every call in between is a miss or a
dropped write, so requests do not each wait out a socket timeout), then tries again. Health reports the
cache as degraded, with the error, until a call succeeds.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis

from ragstore.clock import SYSTEM_CLOCK, Clock

__all__ = ["RedisCache", "RedisConnection"]

log = logging.getLogger(__name__)


class RedisConnection:
    """One connection pool per process, shared by the cache layers and the event bus, plus the breaker."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int,
        timeout_s: float,
        retry_after_s: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.url = url
        self.clock = clock  # times the breaker's `retry_after_s`
        self.retry_after_s = retry_after_s
        self.pool = redis.ConnectionPool.from_url(
            url,
            max_connections=max_connections,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
        self.client = redis.Redis(connection_pool=self.pool)
        self._down_until = 0.0
        self.last_error: str | None = None
        self.failures = 0
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.clock.monotonic() >= self._down_until

    def call(self, what: str, fn: Any, *args: Any, default: Any = None, **kwargs: Any) -> Any:
        """Run one Redis command; when it fails (no connection, or an error reply) open the breaker and return
        `default`."""
        if not self.available:
            return default
        try:
            result = fn(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            # Not only a lost connection: an error reply (OOM under `maxmemory` with a policy that found
            # nothing to evict, READONLY from a replica after a failover, a wrong password after a rotation)
            # would otherwise reach the request that only wanted a cache entry, as a 500.
            self.trip(what, exc)
            return default
        if self.last_error is not None:
            self.recovered()
        return result

    def trip(self, what: str, exc: BaseException) -> None:
        with self._lock:
            first = self.last_error is None
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._down_until = self.clock.monotonic() + self.retry_after_s
        if first:
            log.warning(
                "Redis is unreachable (%s failed: %s); using the in-process caches, retrying in %.0f s",
                what,
                exc,
                self.retry_after_s,
            )

    def recovered(self) -> None:
        with self._lock:
            was = self.last_error
            self.last_error = None
        if was is not None:
            log.warning("Redis is reachable again; shared caches resume")

    def status(self) -> dict[str, object]:
        ok = self.last_error is None
        return {
            "status": "ok" if ok else "degraded",
            "url": _mask(self.url),
            "error": self.last_error,
            "failures": self.failures,
        }

    def close(self) -> None:
        self.pool.disconnect()


def _mask(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


class RedisCache:
    name = "redis"

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection

    def get(self, key: str) -> bytes | None:
        value = self.connection.call("GET", self.connection.client.get, key)
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if ttl_s > 0:
            self.connection.call("SET", self.connection.client.set, key, value, px=int(ttl_s * 1000))

    def delete(self, key: str) -> None:
        self.connection.call("DEL", self.connection.client.delete, key)

    def status(self) -> dict[str, object]:
        return {"backend": self.name, **self.connection.status()}
