"""The outbox's times come from the store's clock: backoff and retention move with a ManualClock, no sleeps.

(The lease of another process lapsing by the clock is in test_workers.py; the job queue's in test_jobs.py.)

The store is opened with the ManualClock (`RagStore.open(clock=...)`), so the writers date the operations they
queue by the same clock the applier reads: what a write queues is due at once, whatever time the clock shows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import select

from ragstore.clock import SYSTEM_CLOCK, ManualClock
from ragstore.config import Settings
from ragstore.db.models import SyncOperation
from ragstore.service import RagStore

DIM = 8


def doc(text: str, seed: int) -> dict[str, Any]:
    vector = np.random.default_rng(seed).normal(size=DIM).tolist()
    return {"text": text, "chunks": [{"text": text, "vector": vector}]}


def test_a_failed_operation_waits_out_its_backoff_by_the_clock(
    make_settings: Callable[..., Settings], embedder: Any
) -> None:
    # The first retry comes 5 to 10 s after the failure (a jittered 10 s).
    settings = make_settings(vector_backend="memory", sync_backoff_base_s=10, sync_backoff_max_s=10)
    clock = ManualClock(SYSTEM_CLOCK.now() - timedelta(days=30))  # far from the real time, on purpose
    with RagStore.open(settings, embedder=embedder, clock=clock) as store:
        store.collections.create("kb", embedding_model="synthetic", dimension=DIM)

        def broken(*_: object) -> None:
            raise OSError("index volume unavailable")

        store.components.vectors.upsert = broken  # type: ignore[method-assign]
        store.documents.add("kb", [doc("later", 1)])  # the inline apply fails and schedules a retry
        del store.components.vectors.upsert  # the real method again
        with store.db.read() as s:
            due = s.scalars(select(SyncOperation.next_attempt_at)).one()
        assert due.timestamp() - clock.now().timestamp() >= 5.0 - 1e-3
        assert store.components.applier.apply_pending().applied == 0  # backing off
        clock.advance(4.9)
        assert store.components.applier.apply_pending().applied == 0
        clock.advance(5.2)
        assert store.components.applier.apply_pending().applied == 1
        assert not store.components.applier.has_pending()


def test_finished_operations_are_pruned_only_once_the_retention_has_passed_by_the_clock(
    make_settings: Callable[..., Settings], embedder: Any
) -> None:
    settings = make_settings(vector_backend="memory", sync_retain_s=3600)
    clock = ManualClock(SYSTEM_CLOCK.now() - timedelta(days=30))  # far from the real time, on purpose
    with RagStore.open(settings, embedder=embedder, clock=clock) as store:
        store.collections.create("kb", embedding_model="synthetic", dimension=DIM)
        for i in range(3):
            store.documents.add("kb", [doc(f"d{i}", i)])
        done = store.index.outbox_counts().done
        assert done >= 3
        assert store.components.applier.prune_done(keep_last=0) == 0  # other replicas still have an hour to replay them
        clock.advance(3599)
        assert store.components.applier.prune_done(keep_last=0) == 0
        clock.advance(2)
        assert store.components.applier.prune_done(keep_last=0) == done
        assert store.components.applier.pruned_through() == store.components.applier.watermark
