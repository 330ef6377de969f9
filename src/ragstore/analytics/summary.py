"""`GET /v1/collections/{name}/analytics`: what users ask, how search serves them, which chunks help."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, select

from ragstore.db.engine import Database
from ragstore.db.models import ChunkAnalytics, Document, DocumentChunk, QueryLog, SearchFeedback, utcnow
from ragstore.schemas import AnalyticsSummary

__all__ = ["summarise"]

LATENCY_SAMPLE = 100_000


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return round(sorted_values[index], 3)


def summarise(db: Database, collection_id: int, collection: str, *, days: int = 7, top: int = 10) -> AnalyticsSummary:
    since = utcnow() - timedelta(days=days)
    in_window = (QueryLog.collection_id == collection_id, QueryLog.created_at >= since)
    with db.read() as s:
        total, hits, zero, filtered = s.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((QueryLog.cache_hit, 1), else_=0)), 0),
                func.coalesce(func.sum(case((QueryLog.result_count == 0, 1), else_=0)), 0),
                func.coalesce(func.sum(case((QueryLog.filtered, 1), else_=0)), 0),
            ).where(*in_window)
        ).one()
        by_mode = dict(s.execute(select(QueryLog.mode, func.count()).where(*in_window).group_by(QueryLog.mode)).all())
        latencies = sorted(
            float(v)
            for v in s.scalars(
                select(QueryLog.latency_ms).where(*in_window).order_by(QueryLog.id.desc()).limit(LATENCY_SAMPLE)
            )
        )
        top_queries = s.execute(
            select(QueryLog.query, func.count().label("n"), func.avg(QueryLog.result_count))
            .where(*in_window, QueryLog.query.is_not(None))
            .group_by(QueryLog.query)
            .order_by(func.count().desc(), QueryLog.query)
            .limit(top)
        ).all()
        zero_queries = s.execute(
            select(QueryLog.query, func.count())
            .where(*in_window, QueryLog.query.is_not(None), QueryLog.result_count == 0)
            .group_by(QueryLog.query)
            .order_by(func.count().desc(), QueryLog.query)
            .limit(top)
        ).all()
        feedback_window = (SearchFeedback.collection_id == collection_id, SearchFeedback.created_at >= since)
        judged, relevant = s.execute(
            select(func.count(), func.coalesce(func.sum(case((SearchFeedback.relevant, 1), else_=0)), 0)).where(
                *feedback_window
            )
        ).one()
        chunk_columns = (
            ChunkAnalytics.chunk_id,
            DocumentChunk.document_id,
            Document.title,
            ChunkAnalytics.returned_count,
            ChunkAnalytics.relevant_count,
            ChunkAnalytics.irrelevant_count,
        )
        base = (
            select(*chunk_columns)
            .join(DocumentChunk, DocumentChunk.id == ChunkAnalytics.chunk_id)
            .join(Document, Document.id == DocumentChunk.document_id)
            .where(ChunkAnalytics.collection_id == collection_id)
        )
        most_returned = s.execute(
            base.order_by(ChunkAnalytics.returned_count.desc(), ChunkAnalytics.chunk_id).limit(top)
        ).all()
        most_relevant = s.execute(
            base.where(ChunkAnalytics.relevant_count > 0)
            .order_by(ChunkAnalytics.relevant_count.desc(), ChunkAnalytics.chunk_id)
            .limit(top)
        ).all()
        most_irrelevant = s.execute(
            base.where(ChunkAnalytics.irrelevant_count > 0)
            .order_by(ChunkAnalytics.irrelevant_count.desc(), ChunkAnalytics.chunk_id)
            .limit(top)
        ).all()

    def chunk(row: Any) -> dict[str, Any]:
        return {
            "chunk_id": int(row[0]),
            "document_id": int(row[1]),
            "title": row[2],
            "returned": int(row[3]),
            "relevant": int(row[4]),
            "irrelevant": int(row[5]),
        }

    total = int(total)
    return AnalyticsSummary.model_validate(
        {
            "collection": collection,
            "days": days,
            "since": since.isoformat(),
            "queries": {
                "total": total,
                "by_mode": {k: int(v) for k, v in sorted(by_mode.items())},
                "cache_hits": int(hits),
                "cache_hit_rate": round(int(hits) / total, 4) if total else None,
                "zero_results": int(zero),
                "filtered": int(filtered),
                "latency_ms": {
                    "p50": _percentile(latencies, 0.50),
                    "p95": _percentile(latencies, 0.95),
                    "p99": _percentile(latencies, 0.99),
                    "mean": round(sum(latencies) / len(latencies), 3) if latencies else None,
                },
            },
            "top_queries": [
                {"query": q, "count": int(n), "avg_results": round(float(avg or 0), 2)} for q, n, avg in top_queries
            ],
            "zero_result_queries": [{"query": q, "count": int(n)} for q, n in zero_queries],
            "feedback": {
                "total": int(judged),
                "relevant": int(relevant),
                "irrelevant": int(judged) - int(relevant),
                "precision": round(int(relevant) / int(judged), 4) if judged else None,
            },
            "chunks": {
                "most_returned": [chunk(r) for r in most_returned],
                "most_relevant": [chunk(r) for r in most_relevant],
                "most_irrelevant": [chunk(r) for r in most_irrelevant],
            },
        }
    )
