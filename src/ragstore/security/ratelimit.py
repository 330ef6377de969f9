"""Rate limits per principal with the `limits` library, a cost per route, and a cap on requests in flight.

Who is counted: an API key by its id, a logged-in user by theirs, and a caller who proved nothing by the
address it calls from (RAGSTORE_RATE_LIMIT_ANONYMOUS); `POST /v1/auth/login` always by address
(RAGSTORE_RATE_LIMIT_LOGIN), so guessing passwords is slow whoever tries. The local operator (auth off,
loopback only) is not limited. A principal's limit is, first found: its key's own (`api_keys.rate_limit`),
its role's (RAGSTORE_RATE_LIMIT_ROLES, by the strongest role it holds), RAGSTORE_RATE_LIMIT_DEFAULT.

The sliding-window counter strategy: O(1) memory per bucket (a moving window keeps one entry per request)
and no burst of twice the limit at a window's edge (a fixed window allows one). Counters live in Redis
when REDIS_URL is set, so that every server process shares them (`limits`' Redis storage), else in this
process (`window_counter.py`, the same algorithm in one call: `limits`' memory storage cost a cached search
~14 µs). Redis is a dependency that may
fail: a failed call trips a breaker (REDIS_RETRY_AFTER_S, the cache's setting) and the limiter counts in
this process's memory until Redis answers again; meanwhile health reports `rate_limiter` degraded. No
request fails because Redis is down.

`limits` is imported on first use (to parse a limit, or for Redis), not with this module: it costs
~120 ms (it loads asyncio and `deprecated`), which every CLI command would pay for a limiter only the
server uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic_core import from_json

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.config import RATE_LIMIT, Settings, parse_role_limits
from ragstore.schemas import MAX_SEARCH_BATCH
from ragstore.security.principal import Principal, Role
from ragstore.security.window_counter import ADMITTED, BUSY, Lane, SlidingWindowCounter

if TYPE_CHECKING:
    from limits import RateLimitItem

__all__ = [
    "COST_UNIT_BYTES",
    "LOGIN_PATH",
    "MAX_COST",
    "UNKNOWN",
    "Admission",
    "Bucket",
    "RateLimiter",
    "batch_cost",
    "body_cost",
    "is_ingest",
    "is_search_batch",
    "route_cost",
    "strongest_role",
]

log = logging.getLogger(__name__)

LOGIN_PATH = "/v1/auth/login"
_INGEST = re.compile(r"/v1/collections/[^/]+/documents")
_SEARCH_BATCH = re.compile(r"/v1/collections/[^/]+/search/batch")
COST_UNIT_BYTES = 64 * 1024  # an ingest costs one more per 64 KiB of body
MAX_COST = 64  # and at most this much (never more than the limit itself: such a request could never pass)
_ROLE_ORDER = (Role.ADMIN, Role.WRITE, Role.READ, Role.METRICS)
_KEY_LIMIT_TTL_S = 60.0  # how long a key's own limit is trusted before it is read again
_KEY_LIMIT_ENTRIES = 10_000
UNKNOWN = object()  # `bucket_now`: the bucket needs a database read (`bucket_for`)


def is_ingest(method: str, path: str) -> bool:
    return method == "POST" and path.endswith("/documents") and _INGEST.fullmatch(path) is not None


def route_cost(method: str, path: str, content_length: int | None) -> int:
    """What one request takes from its budget before it runs: 1, or for an ingest 1 + one per 64 KiB of its
    declared body (capped). An upload that declares no length (chunked) is admitted at 1 and charged the
    rest by the bytes it sent, when it is done (`body_cost`, `RateLimiter.charge`)."""
    if content_length is not None and is_ingest(method, path):
        return body_cost(content_length)
    return 1


def body_cost(size: int) -> int:
    return min(MAX_COST, 1 + size // COST_UNIT_BYTES)


def is_search_batch(method: str, path: str) -> bool:
    return method == "POST" and path.endswith("/search/batch") and _SEARCH_BATCH.fullmatch(path) is not None


def batch_cost(body: bytes) -> int:
    """What a search batch takes from its budget: one per search it holds, as that many searches would
    (at most MAX_SEARCH_BATCH, the most a batch may hold). A body that holds no list of searches costs 1: the
    route refuses it. Read from the body before the batch is admitted, so that a batch the budget cannot
    cover is refused whole (429) and none of its searches runs. pydantic-core's parser, not `json`: a batch of
    100 vectors is ~800 KB of numbers, which `json.loads` takes ~19 ms to read and it ~2."""
    try:
        data = from_json(body)
    except ValueError:  # not JSON, or not UTF-8
        return 1
    searches = data.get("searches") if isinstance(data, dict) else None
    return max(1, min(len(searches), MAX_SEARCH_BATCH)) if isinstance(searches, list) else 1


def strongest_role(principal: Principal) -> Role | None:
    held = set(principal.grants.values())
    return next((role for role in _ROLE_ORDER if role in held), None)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One counter: whose (`key:12`, `user:3`, `addr:10.0.0.5`, `login:10.0.0.5`) and under which limit."""

    name: str
    limit: str  # "600/minute"
    source: str  # where the limit came from, for the 429's message: a variable, or `api_keys.rate_limit`


class Admission(NamedTuple):
    """The limiter's answer for one request; `holds_slot` until `RateLimiter.release`. A tuple, not a frozen
    dataclass: one is built on every request, and a tuple costs a fifth as much to build."""

    allowed: bool
    bucket: str
    limit: int
    remaining: int
    reset_s: float  # seconds until the budget is whole again (RateLimit-Reset)
    retry_after_s: float = 0.0
    reason: str = ""  # why it was refused
    holds_slot: bool = False

    def headers(self) -> list[tuple[bytes, bytes]]:
        """RateLimit-Limit/-Remaining/-Reset (IETF draft), and Retry-After when refused."""
        headers = [
            (b"ratelimit-limit", b"%d" % self.limit),
            (b"ratelimit-remaining", b"%d" % self.remaining),
            (b"ratelimit-reset", b"%d" % max(0, int(self.reset_s + 0.999))),
        ]
        if not self.allowed:
            headers.append((b"retry-after", b"%d" % max(1, int(self.retry_after_s + 0.999))))
        return headers


class RateLimiter:
    """The limits of one server process (shared with the others through Redis when REDIS_URL is set)."""

    def __init__(
        self,
        settings: Settings,
        *,
        key_limit: Callable[[int], str | None],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self.clock = clock  # times the Redis breaker and the key-limit cache (the windows are `limits`')
        self.key_limit = key_limit  # reads api_keys.rate_limit for a key id (a database read: off the loop)
        self.role_limits = {Role(role): limit for role, limit in parse_role_limits(settings.rate_limit_roles).items()}
        self.cap = settings.max_concurrent_requests
        self.storage_name = "redis" if settings.redis_url else "memory"
        self.last_error: str | None = None  # set while Redis fails and counting falls back to memory
        self.fallbacks = 0  # requests counted in memory because Redis failed
        self.refused = 0
        self._items: dict[str, RateLimitItem] = {}
        self._parsed: dict[str, tuple[int, float, tuple[bytes, bytes]]] = {}
        self._memory = SlidingWindowCounter()  # in-process counting and requests in flight (window_counter.py)
        self._redis: Any = None  # the same over Redis (async), per event loop
        self._redis_loop: asyncio.AbstractEventLoop | None = None
        self._down_until = 0.0
        self._key_limits: dict[int, tuple[float, str | None]] = {}
        self._bucket_of: dict[int, tuple[Principal, Bucket, Lane | None]] = {}

    # -- who is counted, under which limit ---------------------------------------------------------------
    def bucket_now(self, principal: Principal | None, address: str, path: str) -> Bucket | object | None:
        """The counter a request is charged to, when it is known without a database read (the hot path: no
        coroutine); `UNKNOWN` when a key's own limit must be read first (then await `bucket_for`). None for
        the local operator, the CLI and the system, who are not limited."""
        s = self.settings
        if path == LOGIN_PATH:
            return Bucket(f"login:{address}", s.rate_limit_login, "RAGSTORE_RATE_LIMIT_LOGIN")
        if principal is None:
            return Bucket(f"addr:{address}", s.rate_limit_anonymous, "RAGSTORE_RATE_LIMIT_ANONYMOUS")
        if principal.key_id is None and principal.user_id is None:
            return None
        # A key's principal object lives in the key cache for seconds: its bucket is looked up by identity
        # (a dict read) instead of being worked out again on every request.
        # No time-to-live: the key cache replaces a key's principal every few seconds (keys.CACHE_TTL_S), and
        # the key's own limit is re-read after _KEY_LIMIT_TTL_S when its new principal's bucket is made.
        known = self._bucket_of.get(id(principal))
        if known is not None and known[0] is principal:
            return known[1]
        return UNKNOWN

    def lane_of(self, principal: Principal | None) -> Lane | None:
        """The hot path of the bucket of a principal seen before (an API key's, counted in this process): see
        window_counter.Lane. None: take `bucket_now` and `admit`."""
        known = self._bucket_of.get(id(principal))
        return known[2] if known is not None and known[0] is principal else None

    async def bucket_for(self, principal: Principal | None, address: str, path: str) -> Bucket | None:
        """The counter a request is charged to (`bucket_now`, reading a key's own limit where it must)."""
        bucket = self.bucket_now(principal, address, path)
        if bucket is not UNKNOWN:
            return bucket  # type: ignore[return-value]
        assert principal is not None
        found = await self._bucket_of_principal(principal)
        if found is not None:
            if len(self._bucket_of) >= _KEY_LIMIT_ENTRIES:
                self._bucket_of.clear()
            lane = None
            if self.storage_name == "memory":
                amount, window_s, _ = self._limit(found.limit)
                lane = self._memory.lane(found.name, amount, window_s, self.cap)
            self._bucket_of[id(principal)] = (principal, found, lane)
        return found

    async def _bucket_of_principal(self, principal: Principal) -> Bucket | None:
        s = self.settings
        if principal.key_id is not None:
            name = f"key:{principal.key_id}"
            own = await self._own_limit(principal.key_id)
            if own is not None:
                return Bucket(name, own, "api_keys.rate_limit")
        elif principal.user_id is not None:
            name = f"user:{principal.user_id}"
        else:
            return None  # the local operator (auth off), the CLI, the system: never limited
        role = strongest_role(principal)
        if role is not None and role in self.role_limits:
            return Bucket(name, self.role_limits[role], "RAGSTORE_RATE_LIMIT_ROLES")
        return Bucket(name, s.rate_limit_default, "RAGSTORE_RATE_LIMIT_DEFAULT")

    async def _own_limit(self, key_id: int) -> str | None:
        """The key's own limit from `api_keys.rate_limit`, cached for a minute (read in a thread on a miss)."""
        now = self.clock.monotonic()
        cached = self._key_limits.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        import anyio.to_thread

        try:
            value = await anyio.to_thread.run_sync(self.key_limit, key_id)
        except Exception:
            log.warning("could not read the rate limit of key %s; using its role's", key_id, exc_info=True)
            value = None
        if value is not None and not _valid_limit(value):
            log.warning("api_keys.rate_limit of key %s is not a rate limit (%r); using its role's", key_id, value)
            value = None
        if len(self._key_limits) >= _KEY_LIMIT_ENTRIES:
            self._key_limits.clear()
        self._key_limits[key_id] = (now + _KEY_LIMIT_TTL_S, value)
        return value

    def forget_key(self, key_id: int) -> None:
        """Read the key's own limit again at its next request (call after changing `api_keys.rate_limit`)."""
        self._key_limits.pop(key_id, None)
        self._bucket_of.clear()

    # -- admission ----------------------------------------------------------------------------------------
    def admit_now(self, bucket: Bucket, cost: int) -> Admission | None:
        """`admit` without a coroutine where the count is this process's (no Redis, or Redis down and not yet
        due for a retry): one call under one lock on the hot path. None where Redis must answer: await
        `admit`."""
        if self.storage_name == "redis":
            if self.clock.monotonic() >= self._down_until:
                return None
            self.fallbacks += 1
        amount, window_s, _ = self._parsed.get(bucket.limit) or self._limit(bucket.limit)
        verdict, remaining, reset_s, retry_s = self._memory.take(
            bucket.name, amount, window_s, max(1, min(cost, amount)), self.cap
        )
        if verdict == ADMITTED:
            return Admission(True, bucket.name, amount, remaining, reset_s, 0.0, "", True)
        if verdict == BUSY:
            return self._too_many_in_flight(bucket, amount)
        return self._over_limit(bucket, amount, remaining, retry_s, retry_s)

    async def admit(self, bucket: Bucket, cost: int) -> Admission:
        """Take a slot of the bucket's concurrency cap and `cost` from its budget, or refuse (and take nothing)."""
        local = self.admit_now(bucket, cost)
        if local is not None:
            return local
        item = self._item(bucket.limit)
        cost = max(1, min(cost, item.amount))
        if not self._memory.enter(bucket.name, self.cap):
            return self._too_many_in_flight(bucket, item.amount)
        try:
            allowed, remaining, reset_at = await self._hit(item, bucket.name, cost)
        except BaseException:
            self._memory.leave(bucket.name)
            raise
        reset_s = max(0.0, reset_at - time.time())
        if not allowed:
            self._memory.leave(bucket.name)
            return self._over_limit(bucket, item.amount, remaining, reset_s, max(1.0, reset_s))
        return Admission(True, bucket.name, item.amount, remaining, reset_s, holds_slot=True)

    def _too_many_in_flight(self, bucket: Bucket, amount: int) -> Admission:
        self.refused += 1
        return Admission(
            False,
            bucket.name,
            amount,
            0,
            1.0,
            retry_after_s=1.0,
            reason=f"{self.cap} requests of this caller are in flight already (MAX_CONCURRENT_REQUESTS)",
        )

    def _over_limit(self, bucket: Bucket, amount: int, remaining: int, reset_s: float, retry_s: float) -> Admission:
        self.refused += 1
        return Admission(
            False,
            bucket.name,
            amount,
            remaining,
            reset_s,
            retry_after_s=max(1.0, retry_s),
            reason=f"over the rate limit of {bucket.limit} ({bucket.source})",
        )

    async def charge(self, bucket: Bucket, cost: int) -> None:
        """Take `cost` more from the bucket after the fact (a chunked upload's bytes), as much as is left: the
        request already ran, so this only makes the next ones wait."""
        item = self._item(bucket.limit)
        remaining = 0
        with contextlib.suppress(Exception):
            remaining = await self._remaining(item, bucket.name)
        cost = min(cost, remaining)
        if cost > 0:
            await self._hit(item, bucket.name, cost)

    async def _remaining(self, item: RateLimitItem, name: str) -> int:
        if self.storage_name == "redis" and self.clock.monotonic() >= self._down_until and self.last_error is None:
            stats = await self._redis_limiter().get_window_stats(item, name)
            return int(stats.remaining)
        return self._memory.remaining(name, item.amount, item.get_expiry())

    def release(self, admission: Admission) -> None:
        if admission.holds_slot:
            self._memory.leave(admission.bucket)

    def in_flight(self, name: str) -> int:
        return self._memory.in_flight(name)

    def _limit(self, text: str) -> tuple[int, float, tuple[bytes, bytes]]:
        """(amount, window in seconds, the RateLimit-Limit header) of a limit's text, parsed once."""
        parsed = self._parsed.get(text)
        if parsed is None:
            item = self._item(text)
            header = (b"ratelimit-limit", b"%d" % item.amount)
            parsed = self._parsed[text] = (item.amount, float(item.get_expiry()), header)
        return parsed

    def _item(self, text: str) -> RateLimitItem:
        item = self._items.get(text)
        if item is None:
            from limits import parse

            item = self._items[text] = parse(text)
        return item

    async def _hit(self, item: RateLimitItem, name: str, cost: int) -> tuple[bool, int, float]:
        """(allowed, remaining, reset time as epoch seconds) from Redis, or from memory when Redis fails."""
        if self.storage_name == "redis" and self.clock.monotonic() >= self._down_until:
            try:
                limiter = self._redis_limiter()
                allowed = await limiter.hit(item, name, cost=cost)
                stats = await limiter.get_window_stats(item, name)
            except Exception as exc:  # whatever Redis or its client raised: count here instead
                self._trip(exc)
            else:
                if self.last_error is not None:
                    self._recovered()
                return bool(allowed), int(stats.remaining), float(stats.reset_time)
            self.fallbacks += 1
        elif self.storage_name == "redis":
            self.fallbacks += 1
        count = self._memory.hit(name, item.amount, item.get_expiry(), cost)
        reset_at = time.time() + (count.retry_after_s if not count.allowed else count.reset_s)
        return count.allowed, count.remaining, reset_at

    def _redis_limiter(self) -> Any:
        """The async Redis limiter of the running event loop (a connection belongs to the loop that made it)."""
        loop = asyncio.get_running_loop()
        if self._redis is None or self._redis_loop is not loop:
            from limits.aio.storage import RedisStorage
            from limits.aio.strategies import SlidingWindowCounterRateLimiter
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            s = self.settings
            assert s.redis_url is not None
            storage = RedisStorage(
                _async_uri(s.redis_url),
                implementation="redispy",
                key_prefix=f"{s.cache_namespace}:ratelimit",
                max_connections=s.redis_max_connections,
                socket_timeout=s.redis_timeout_s,
                socket_connect_timeout=s.redis_timeout_s,
                # No retries: redis-py's default retries thrice with backoff of seconds, which a request
                # would wait out; the breaker above is the retry policy.
                retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]
            )
            self._redis = SlidingWindowCounterRateLimiter(storage)
            self._redis_loop = loop
        return self._redis

    def _trip(self, exc: BaseException) -> None:
        first = self.last_error is None
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._down_until = self.clock.monotonic() + self.settings.redis_retry_after_s
        self._redis = None  # a new client next time: the old one's connections may be broken
        if first:
            log.warning(
                "Redis is unreachable for rate limits (%s); counting in this process's memory, retrying in %.0f s",
                self.last_error,
                self.settings.redis_retry_after_s,
            )

    def _recovered(self) -> None:
        self.last_error = None
        log.warning("Redis is reachable again; rate limits are shared again")

    def status(self) -> dict[str, object]:
        """For health: degraded while Redis fails and the counts are this process's alone."""
        return {
            "status": "degraded" if self.last_error else "ok",
            "storage": self.storage_name,
            "counting_in": "memory" if self.last_error or self.storage_name == "memory" else "redis",
            "error": self.last_error,
            "fallbacks": self.fallbacks,
            "refused": self.refused,
        }


def _async_uri(url: str) -> str:
    """REDIS_URL in the form limits' async storage expects (`async+redis://`, `async+redis+unix://`)."""
    if url.startswith("unix://"):
        return "async+redis+unix://" + url.removeprefix("unix://")
    return "async+" + url


def _valid_limit(text: str) -> bool:
    return RATE_LIMIT.fullmatch(text) is not None
