"""One shared suite run against every VectorIndex backend (the in-memory reference and the embedded index)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from ragstore.errors import InvalidInput
from ragstore.vectors.base import CollectionSpec, VectorIndex
from ragstore.vectors.embedded import EmbeddedVectorIndex
from ragstore.vectors.memory import MemoryVectorIndex

DIM = 16
Factory = Callable[[], VectorIndex]


@pytest.fixture(params=["memory", "embedded"])
def make_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    if request.param == "memory":
        shared = MemoryVectorIndex()
        yield lambda: shared
    else:
        yield lambda: EmbeddedVectorIndex(tmp_path / "index")


def vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def ids(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_upsert_search_count(make_index: Factory) -> None:
    index = make_index()
    index.ensure_collection(CollectionSpec(1, DIM))
    data = vectors(50)
    index.upsert(1, np.arange(1, 51, dtype=np.int64), data)
    assert index.count(1) == 50
    hits = index.search(1, data[9], k=3)
    assert hits[0].id == 10 and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_upsert_is_idempotent_and_replaces(make_index: Factory) -> None:
    index = make_index()
    index.ensure_collection(CollectionSpec(1, DIM))
    a, b = vectors(2, seed=1)
    index.upsert(1, ids(7), a[None])
    index.upsert(1, ids(7), a[None])
    assert index.count(1) == 1
    index.upsert(1, ids(7), b[None])
    assert index.count(1) == 1
    assert index.search(1, b, k=1)[0].score == pytest.approx(1.0, abs=1e-4)


def test_delete_is_idempotent(make_index: Factory) -> None:
    index = make_index()
    index.ensure_collection(CollectionSpec(1, DIM))
    index.upsert(1, ids(1, 2, 3), vectors(3))
    index.delete(1, ids(2, 99))
    index.delete(1, ids(2))
    index.delete(42, ids(1))  # unknown collection: nothing happens
    assert index.count(1) == 2
    assert {int(i) for batch in index.iter_ids(1) for i in batch} == {1, 3}
    assert all(h.id != 2 for h in index.search(1, vectors(3)[1], k=3))


def test_collections_are_separate(make_index: Factory) -> None:
    index = make_index()
    index.ensure_collection(CollectionSpec(1, DIM))
    index.ensure_collection(CollectionSpec(2, 4))
    index.upsert(1, ids(1), vectors(1))
    index.upsert(2, ids(1), np.ones((1, 4), dtype=np.float32))
    assert index.count(1) == index.count(2) == 1
    with pytest.raises(InvalidInput):
        index.upsert(2, ids(2), vectors(1))
    index.drop_collection(2)
    index.drop_collection(2)
    assert index.count(2) == 0 and index.count(1) == 1


def test_search_restricted_to_allowed_ids(make_index: Factory) -> None:
    index = make_index()
    index.ensure_collection(CollectionSpec(1, DIM))
    data = vectors(100, seed=3)
    index.upsert(1, np.arange(1, 101, dtype=np.int64), data)
    allowed = [5, 50, 95]
    hits = index.search(1, data[0], k=10, allowed_ids=allowed)
    assert sorted(h.id for h in hits) == allowed
    assert index.search(1, data[0], k=10, allowed_ids=[]) == []


def test_persist_and_reopen(make_index: Factory, tmp_path: Path) -> None:
    index = make_index()
    if not index.is_durable():
        pytest.skip("the in-memory index keeps nothing across restarts by design (rebuilt from SQL)")
    index.ensure_collection(CollectionSpec(1, DIM))
    data = vectors(20)
    index.upsert(1, np.arange(1, 21, dtype=np.int64), data)
    index.mark_applied(1, 17)
    index.close()
    again = make_index()
    again.ensure_collection(CollectionSpec(1, DIM))
    assert again.count(1) == 20 and again.applied_seq(1) == 17
    assert again.search(1, data[4], k=1)[0].id == 5


def test_a_damaged_index_file_is_not_trusted(tmp_path: Path) -> None:
    index = EmbeddedVectorIndex(tmp_path / "index")
    index.ensure_collection(CollectionSpec(1, DIM))
    index.upsert(1, ids(1, 2), vectors(2))
    index.mark_applied(1, 5)
    index.close()
    (tmp_path / "index" / "1.usearch").write_bytes(b"garbage")
    again = EmbeddedVectorIndex(tmp_path / "index")
    again.ensure_collection(CollectionSpec(1, DIM))
    assert again.applied_seq(1) == 0  # unknown: the store rebuilds it from SQL
    assert again.count(1) == 0


def test_dimension_mismatch_is_refused(make_index: Factory) -> None:
    index = make_index()
    index.ensure_collection(CollectionSpec(1, DIM))
    with pytest.raises(InvalidInput):
        index.upsert(1, ids(1), np.ones((1, DIM + 1), dtype=np.float32))
    with pytest.raises(InvalidInput):
        index.ensure_collection(CollectionSpec(1, DIM + 1))
