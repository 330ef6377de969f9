"""When each collection's search breadth is measured, and where the result is kept (issue 22).

`vectors/tuning.py` measures; this module decides when, keeps the result in `index_tuning` (one row per
collection and backend: the breadth, the curve, the size and the time it was measured at) and sets the breadth
on this process's index. SQL is the record every process follows: `apply_stored` sets each open collection's
breadth from its row (or back to RAGSTORE_HNSW_EF_SEARCH without one) when the store opens and at each of the
server's checks, so a breadth tuned by `ragstore index tune` in another process reaches the server within one
check.

A collection is measured again (`due`) when it has no row, when RAGSTORE_TARGET_RECALL changed, when it holds
twice (or half) the vectors it was measured at, or when its measurement is RETUNE_AFTER old (an index under
steady churn changes without growing). Time is the store's clock. Collections searched exactly (the embedded
index up to 2,000 vectors, Milvus while FLAT) and backends with no breadth (Chroma) have nothing to tune.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, inspect, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock, as_utc
from ragstore.db.engine import Database
from ragstore.db.index_models import IndexTuning
from ragstore.documents.catalog import CollectionRef
from ragstore.schemas import CollectionTuning, TuningPoint, TuningState
from ragstore.vectors.base import VectorIndex, search_depth
from ragstore.vectors.tuning import SAMPLE, K, Measurement, measure

__all__ = ["RETUNE_AFTER", "RETUNE_GROWTH", "IndexTuner", "due_reason"]

log = logging.getLogger(__name__)

RETUNE_GROWTH = 2.0  # measured again at twice (or half) the vectors it was measured at
RETUNE_AFTER = timedelta(days=30)


def due_reason(row: IndexTuning | None, vectors: int, target: float, now: datetime) -> str | None:
    """Why a collection searched through a graph should be measured (again), or None when its row stands."""
    if row is None:
        return "never measured"
    if abs(row.target_recall - target) > 1e-9:
        return f"the target was {row.target_recall:g} when measured, it is {target:g} now"
    if vectors >= row.vector_count * RETUNE_GROWTH or vectors * RETUNE_GROWTH <= row.vector_count:
        return f"{row.vector_count:,} vectors when measured, {vectors:,} now"
    age = now - as_utc(row.tuned_at)
    if age >= RETUNE_AFTER:
        return f"measured {age.days} days ago"
    return None


@dataclass(eq=False)
class IndexTuner:
    """Measures, keeps and applies search breadths for one store (`backend` names the rows it owns)."""

    db: Database
    vectors: VectorIndex
    backend: str
    target: float  # RAGSTORE_TARGET_RECALL
    default_ef: int  # RAGSTORE_HNSW_EF_SEARCH: the breadth of a collection without a row
    clock: Clock = SYSTEM_CLOCK
    should_stop: Callable[[], bool] = lambda: False
    sample: int = SAMPLE
    # One measurement at a time in this process: a second caller waits, then finds the first one's row.
    _running: threading.Lock = field(default_factory=threading.Lock, init=False)

    def rows(self) -> dict[int, IndexTuning]:
        with self.db.read() as s:
            found = s.scalars(select(IndexTuning).where(IndexTuning.backend == self.backend)).all()
        return {row.collection_id: row for row in found}

    def apply_stored(self, refs: Sequence[CollectionRef]) -> int:
        """Set each collection's breadth from its row (the default without one); how many had a row."""
        rows = self.rows()
        for ref in refs:
            row = rows.get(ref.id)
            self.vectors.set_expansion_search(ref.id, row.ef_search if row is not None else None)
        return sum(1 for ref in refs if ref.id in rows)

    def state(self, refs: Sequence[CollectionRef]) -> list[CollectionTuning]:
        """What each collection searches at, from its row and the index; nothing is measured."""
        rows, now = self.rows(), self.clock.now()
        out = []
        for ref in refs:
            mode, vectors = self.vectors.search_mode(ref.id), self.vectors.count(ref.id)
            row = rows.get(ref.id)
            if mode != "graph":
                out.append(self._untunable(ref, mode, vectors))
            elif row is None:
                out.append(
                    CollectionTuning(
                        collection=ref.name,
                        state="untuned",
                        vectors=vectors,
                        ef_search=self.default_ef,
                        target_recall=self.target,
                        due=due_reason(None, vectors, self.target, now),
                    )
                )
            else:
                out.append(_from_row(ref, row, vectors, due_reason(row, vectors, self.target, now)))
        return out

    def tune(self, refs: Sequence[CollectionRef], *, only_due: bool = False) -> list[CollectionTuning]:
        """Measure each collection (with `only_due`, only those `due_reason` names) and keep the result; the
        others are reported as they stand."""
        with self._running:
            rows = self.rows()
            out = []
            for ref in refs:
                mode = self.vectors.search_mode(ref.id)
                vectors = self.vectors.count(ref.id)
                row = rows.get(ref.id)
                if mode != "graph":
                    if row is not None:  # shrunk below the exact size (or Milvus back to FLAT): nothing to keep
                        self._forget(ref.id)
                    out.append(self._untunable(ref, mode, vectors))
                    continue
                reason = due_reason(row, vectors, self.target, self.clock.now())
                if only_due and reason is None:
                    assert row is not None
                    out.append(_from_row(ref, row, vectors, None))
                    continue
                measured = measure(
                    self.vectors,
                    ref.id,
                    self.target,
                    sample=self.sample,
                    seed=ref.id,
                    depth=search_depth(K, approximate=self.vectors.approximate_scores),
                    should_stop=self.should_stop,
                )
                if measured.ef is None:  # the collection became exact meanwhile
                    out.append(self._untunable(ref, measured.mode, measured.vectors))
                    continue
                kept = self._keep(ref.id, measured)
                self.vectors.set_expansion_search(ref.id, measured.ef)
                log.info(
                    "collection %s: ef_search %d for recall@10 %.3f (target %.3f, %d vectors, %.1f s)%s",
                    ref.name,
                    measured.ef,
                    measured.recall or 0.0,
                    self.target,
                    measured.vectors,
                    measured.seconds,
                    "" if measured.met else ": short of the target, where the graph itself tops out",
                )
                out.append(_from_row(ref, kept, measured.vectors, None, state="tuned"))
            return out

    def _untunable(self, ref: CollectionRef, mode: str, vectors: int) -> CollectionTuning:
        return CollectionTuning(
            collection=ref.name,
            state="exact" if mode == "exact" else "not_tunable",
            vectors=vectors,
            ef_search=None,
            target_recall=self.target,
        )

    def _keep(self, collection_id: int, measured: Measurement) -> IndexTuning:
        """Write the measurement as the collection's row (replacing its last one); the row, as written."""
        row = IndexTuning(
            collection_id=collection_id,
            backend=self.backend,
            ef_search=measured.ef,
            target_recall=measured.target,
            recall=measured.recall,
            met=measured.met,
            vector_count=measured.vectors,
            sample_size=measured.sample,
            curve=[asdict(p) for p in measured.curve],
            duration_ms=round(measured.seconds * 1000, 1),
            tuned_at=self.clock.now(),
        )
        values = {attr.key: getattr(row, attr.key) for attr in inspect(IndexTuning).column_attrs}

        def unit(s: Session) -> None:
            insert: Any = sqlite_insert if s.get_bind().dialect.name == "sqlite" else pg_insert
            stmt = insert(IndexTuning).values(**values)
            keys = {"collection_id", "backend"}
            s.execute(
                stmt.on_conflict_do_update(
                    index_elements=[IndexTuning.collection_id, IndexTuning.backend],
                    set_={name: stmt.excluded[name] for name in values if name not in keys},
                )
            )

        self.db.write(unit)
        return row

    def _forget(self, collection_id: int) -> None:
        self.db.write(
            lambda s: s.execute(
                delete(IndexTuning).where(
                    IndexTuning.collection_id == collection_id, IndexTuning.backend == self.backend
                )
            )
        )
        self.vectors.set_expansion_search(collection_id, None)


def _from_row(
    ref: CollectionRef, row: IndexTuning, vectors: int, due: str | None, *, state: TuningState = "current"
) -> CollectionTuning:
    return CollectionTuning(
        collection=ref.name,
        state=state,
        vectors=vectors,
        ef_search=row.ef_search,
        target_recall=row.target_recall,
        recall=row.recall,
        met=row.met,
        vectors_measured=row.vector_count,
        sample=row.sample_size,
        curve=[TuningPoint.model_validate(p) for p in row.curve],
        tuned_at=as_utc(row.tuned_at),
        seconds=round(row.duration_ms / 1000, 3),
        due=due,
    )
