"""`index_tuning`: the search breadth each collection's vector index was tuned to, and the measurement behind
it (vectors/tuning.py measures, indexing/tuning.py decides when and writes the row)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ragstore.db.models import Base, BigId, JsonDoc

__all__ = ["IndexTuning"]


class IndexTuning(Base):
    """One collection's tuned HNSW ef_search in one vector backend (a graph built by another backend is another
    graph). Only collections searched through a graph have a row: exact ones have nothing to tune."""

    __tablename__ = "index_tuning"

    collection_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    backend: Mapped[str] = mapped_column(String(32), primary_key=True)
    ef_search: Mapped[int] = mapped_column(Integer)
    target_recall: Mapped[float] = mapped_column(Float)  # RAGSTORE_TARGET_RECALL when it was measured
    recall: Mapped[float] = mapped_column(Float)  # recall@10 of the sampled queries at ef_search
    met: Mapped[bool] = mapped_column(Boolean)  # False: no breadth of the ladder reached the target
    vector_count: Mapped[int] = mapped_column(BigInteger)  # the collection's size when measured
    sample_size: Mapped[int] = mapped_column(Integer)
    curve: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)  # [{ef, recall, stderr, p50_us}], by ef
    duration_ms: Mapped[float] = mapped_column(Float)
    tuned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
