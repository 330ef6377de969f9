"""The two record types fed by ragstore itself: AI request statistics and cache samples.

`ai_request_stats` takes the requests a service reports (LLM calls, its own embedding calls). ragstore's own
paid embedding calls are already one row each in `embedding_usage` (wiring.record_usage); rather than write
every call twice, the summary reads both tables and adds them up per model and day. That costs nothing per
call, keeps one row per fact, and `embedding_usage` keeps its meaning for the usage log. (Local embedding
calls are free and not recorded anywhere, so they are not counted here either.)

`cache_metadata` rows are samples of the counters of the cache layers that exist (embeddings, search,
sessions: cache/layers.py), taken by the scheduler every CACHE_SAMPLE_MINUTES and on demand.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select

from ragstore.db.engine import Database
from ragstore.db.models import EmbeddingUsage
from ragstore.records.schemas import AiRequestDay, AiRequestSummary

__all__ = ["CACHE_SAMPLE_MINUTES", "MAX_SUMMARY_DAYS", "cache_samples", "days_delta", "summarise"]

MAX_SUMMARY_DAYS = 366
CACHE_SAMPLE_MINUTES = 15


def days_delta(days: int) -> timedelta:
    return timedelta(days=days)


def _day(value: Any) -> date:
    """SQLite's date() gives text, PostgreSQL's a date: the one place that tells them apart."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def summarise(db: Database, model: Any, *, since: datetime, days: int) -> AiRequestSummary:
    rows: dict[tuple[date, str, str], AiRequestDay] = {}
    stats_day = func.date(model.created_at)
    usage_day = func.date(EmbeddingUsage.created_at)
    stats_query = (
        select(
            stats_day,
            model.model,
            model.kind,
            func.count(),
            func.sum(case((model.outcome != "ok", 1), else_=0)),
            func.sum(model.prompt_tokens),
            func.sum(model.completion_tokens),
            func.sum(model.cost_usd),
            func.sum(model.latency_ms),
        )
        .where(model.created_at >= since)
        .group_by(stats_day, model.model, model.kind)
    )
    usage_query = (
        select(
            usage_day,
            EmbeddingUsage.model,
            func.count(),
            func.sum(EmbeddingUsage.tokens),
            func.sum(EmbeddingUsage.cost_usd),
            func.sum(EmbeddingUsage.duration_ms),
        )
        .where(EmbeddingUsage.created_at >= since)
        .group_by(usage_day, EmbeddingUsage.model)
    )
    latency_sums: dict[tuple[date, str, str], float] = {}
    with db.read() as s:
        for day, name, kind, count, errors, prompt, completion, cost, latency in s.execute(stats_query):
            key = (_day(day), str(name), str(kind))
            _add(
                rows,
                latency_sums,
                key,
                int(count),
                int(errors or 0),
                int(prompt or 0),
                int(completion or 0),
                float(cost or 0),
                float(latency or 0),
            )
        for day, name, count, tokens, cost, latency in s.execute(usage_query):
            key = (_day(day), str(name), "embedding")
            _add(rows, latency_sums, key, int(count), 0, int(tokens or 0), 0, float(cost or 0), float(latency or 0))
    for key, row in rows.items():
        row.latency_ms_avg = round(latency_sums[key] / row.requests, 3) if row.requests else 0.0
    ordered = sorted(rows.values(), key=lambda r: (r.day, r.model, r.kind), reverse=True)
    totals: dict[str, int] = {}
    for row in ordered:
        totals[row.model] = totals.get(row.model, 0) + row.requests
    return AiRequestSummary(days=days, rows=ordered, totals_by_model=totals)


def _add(
    rows: dict[tuple[date, str, str], AiRequestDay],
    latency_sums: dict[tuple[date, str, str], float],
    key: tuple[date, str, str],
    count: int,
    errors: int,
    prompt: int,
    completion: int,
    cost: float,
    latency: float,
) -> None:
    row = rows.get(key)
    if row is None:
        row = rows[key] = AiRequestDay(
            day=key[0],
            model=key[1],
            kind=key[2],
            requests=0,
            errors=0,
            prompt_tokens=0,
            completion_tokens=0,
            cost_usd=0.0,
            latency_ms_avg=0.0,
        )
    row.requests += count
    row.errors += errors
    row.prompt_tokens += prompt
    row.completion_tokens += completion
    row.cost_usd = round(row.cost_usd + cost, 6)
    latency_sums[key] = latency_sums.get(key, 0.0) + latency


def cache_samples(stats: Mapping[str, Mapping[str, int]]) -> list[dict[str, Any]]:
    """One row's values per cache layer: hits, misses, writes and the hit rate so far."""
    samples = []
    for layer, counts in sorted(stats.items()):
        hits, misses = int(counts.get("hits", 0)), int(counts.get("misses", 0))
        looked = hits + misses
        samples.append(
            {
                "layer": layer[:64],
                "hits": hits,
                "misses": misses,
                "writes": int(counts.get("writes", 0)),
                "hit_rate": round(hits / looked, 6) if looked else 0.0,
            }
        )
    return samples
