"""When the client sends a request again, and how long it waits first.

The rule (README, "Python client"):

* **429 and 503 are retried for every request**, POSTs that add documents included. ragstore answers 429
  from its rate limiter and concurrency cap before the route runs, and 503 when a component it needs cannot
  serve, with nothing changed (the `DOWN` outcome every route documents; an ingest stopped by a shutdown
  stores nothing either). A repeat therefore cannot do the work twice.
* **A connection that could not be opened** (refused, DNS, connect timeout) is retried for every request:
  nothing was sent.
* **A connection that failed after the request was sent** (read timeout, reset, a truncated answer) is
  retried only for a request that is safe to repeat (`Call.idempotent`: reads, searches, deletes, lookups);
  the server may have done a POST's work, and sending it again could store it twice.
* Nothing else is retried: 4xx are the caller's to fix, and other 5xx are failures a repeat would meet again.

The wait before attempt n+1 is the server's `Retry-After` (seconds or an HTTP date) when it sends one, else
`backoff * 2**n`; either is capped at `max_wait`, so a server asking for an hour does not hang a script.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

import httpx

__all__ = ["RETRIED_STATUSES", "RetryPolicy", "retry_after_s", "sent_nothing"]

RETRIED_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 3  # attempts after the first
    backoff: float = 0.5  # seconds before the first retry without Retry-After; doubled each time
    max_wait: float = 30.0  # no single wait is longer

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_wait < 0:
            raise ValueError("retries, backoff and max_wait must not be negative")

    def wait_s(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (0 for the first)."""
        wanted = retry_after if retry_after is not None else self.backoff * (2**attempt)
        return max(0.0, min(wanted, self.max_wait))


def retry_after_s(response: httpx.Response, now: datetime) -> float | None:
    """The response's Retry-After in seconds from `now`: delta-seconds or an HTTP date (RFC 9110 10.2.3);
    None when absent or unreadable (the backoff applies then)."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT by definition
        return None
    return max(0.0, (when - now).total_seconds())


def sent_nothing(exc: httpx.TransportError) -> bool:
    """The request never left: the connection could not be opened (so any request may be sent again)."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
