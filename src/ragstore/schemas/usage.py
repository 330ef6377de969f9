"""Usage accounting and rate limits as the API, the CLI and health report them."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from ragstore.schemas.core import Model, UtcTime

__all__ = ["UsageMaintenance", "UsageRow", "UsageSummary", "UsageTotals"]


class UsageTotals(Model):
    requests: int = 0
    errors: int = 0  # answered with a status of 400 or more
    rate_limited: int = 0  # answered 429
    request_bytes: int = 0
    response_bytes: int = 0
    embedding_calls: int = 0
    embedding_tokens: int = 0


class UsageRow(UsageTotals):
    """One day's requests of one key (or user, or anonymous caller) to one route."""

    day: date
    api_key_id: int | None = None  # api_keys.id; None for a user's session or an anonymous caller
    key: str | None = None  # the key's public id (as in `ragstore keys list`)
    key_name: str | None = None
    user_id: int | None = None
    method: str
    route: str  # the route template, e.g. /v1/collections/{name}/search
    latency_ms_avg: float
    latency_ms_max: float


class UsageSummary(Model):
    since: UtcTime
    until: UtcTime
    days: int
    api_key_id: int | None = None  # the key the summary is limited to, if one was asked for
    totals: UsageTotals
    rows: list[UsageRow] = Field(default_factory=list)
    truncated: bool = False  # more groups than `limit`: the busiest first were kept


class UsageMaintenance(Model):
    """What one run of the usage retention job did."""

    cutoff: UtcTime
    dialect: str
    partitions_created: list[str] = Field(default_factory=list)  # PostgreSQL: months made ahead
    partitions_dropped: list[str] = Field(default_factory=list)  # PostgreSQL: whole months past retention
    rows_deleted: int = 0  # SQLite (and PostgreSQL's DEFAULT partition): rows past retention, in batches
