"""Index replicas: every process holds one and follows the outbox; pruning never strands a replica."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ragstore.config import Settings
from ragstore.service import RagStore
from ragstore.vectors.base import CollectionSpec
from ragstore.vectors.embedded import EmbeddedVectorIndex

DIM = 8


def doc(text: str, seed: int) -> dict[str, Any]:
    vector = np.random.default_rng(seed).normal(size=DIM).tolist()
    return {"text": text, "chunks": [{"text": text, "vector": vector}]}


def test_a_replica_replays_what_another_process_wrote(make_settings: Callable[..., Settings], embedder: Any) -> None:
    settings = make_settings(vector_backend="memory")
    with RagStore.open(settings, embedder=embedder) as one, RagStore.open(settings, embedder=embedder) as two:
        one.collections.create("kb", embedding_model="synthetic", dimension=DIM)
        for i in range(5):
            one.documents.add("kb", [doc(f"d{i}", i)])
        probe = np.random.default_rng(3).normal(size=DIM).tolist()
        assert [h.text for h in two.search("kb", vector=probe, k=1).hits] == ["d3"]
        assert two.components.applier.replays == 5 and two.components.applier.applications == 0
        assert two.components.applier.watermark == one.components.applier.watermark


def test_a_replica_behind_the_pruned_point_rebuilds_instead_of_replaying(
    make_settings: Callable[..., Settings], embedder: Any
) -> None:
    settings = make_settings(vector_backend="memory", sync_retain_s=0)
    with RagStore.open(settings, embedder=embedder) as one, RagStore.open(settings, embedder=embedder) as two:
        one.collections.create("kb", embedding_model="synthetic", dimension=DIM)
        one.documents.add("kb", [doc("first", 1)])
        two.search("kb", vector=[1.0] * DIM)  # two follows up to here
        for i in range(2, 6):
            one.documents.add("kb", [doc(f"d{i}", i)])
        one.documents.add("kb", [doc("last", 99)])
        assert one.components.applier.prune_done(keep_last=0) == 6
        assert one.components.applier.pruned_through() == one.components.applier.watermark
        assert one.index.outbox_counts().done == 0
        # two is behind operations that no longer exist: it must rebuild, not miss them.
        hits = two.search("kb", vector=[1.0] * DIM, k=10).hits
        assert sorted(h.text for h in hits) == sorted(["first", "d2", "d3", "d4", "d5", "last"])


def test_an_older_replica_never_overwrites_newer_index_files(tmp_path: Path) -> None:
    spec = CollectionSpec(id=1, dimension=DIM)
    vectors = np.random.default_rng(0).normal(size=(3, DIM)).astype(np.float32)
    newer, older = EmbeddedVectorIndex(tmp_path), EmbeddedVectorIndex(tmp_path)
    for index in (newer, older):
        index.ensure_collection(spec)
    newer.upsert(1, np.arange(3, dtype=np.int64), vectors)
    newer.mark_applied(1, 10)
    newer.persist()
    older.upsert(1, np.arange(1, dtype=np.int64), vectors[:1])
    older.mark_applied(1, 4)
    older.persist()  # skipped: the files on disk are at 10
    reopened = EmbeddedVectorIndex(tmp_path)
    reopened.ensure_collection(spec)
    assert reopened.applied_seq(1) == 10 and reopened.count(1) == 3
