"""Filtered dense search (issue #22): both strategies find the exact filtered neighbours, on both databases.

A filter keeping many chunks is answered from graph candidates checked in SQL (the probe); one keeping few
lists its chunks through the facet indexes and scores them exactly over the embedded index's flat copy.
Each is checked against numpy's exact filtered top 10 over the vectors given, and the flat copy is
checked to follow writes made after it was built.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.vectors.flat import FlatVectors

from conftest import CountingEmbedder

DIM = 16
K = 10


def _vectors(n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def filtered(store: RagStore) -> tuple[RagStore, np.ndarray, dict[str, np.ndarray]]:
    """3,000 one-chunk documents: `half` keeps 50 %, `tenth` 10 %, `rare` 1 %."""
    n = 3000
    vectors = _vectors(n)
    meta = {"half": np.arange(n) % 2, "tenth": np.arange(n) % 10, "rare": np.arange(n) % 100}
    store.collections.create("f", embedding_model="given", dimension=DIM)
    store.documents.add(
        "f",
        [
            {
                "source_uri": f"d{i}",
                "metadata": {key: int(values[i]) for key, values in meta.items()},
                "chunks": [{"text": f"chunk {i}", "vector": vectors[i].tolist()}],
            }
            for i in range(n)
        ],
    )
    return store, vectors, meta


def _exact(vectors: np.ndarray, allowed: np.ndarray, query: np.ndarray) -> list[str]:
    rows = np.flatnonzero(allowed)
    order = np.argsort(-(vectors[rows] @ query), kind="stable")[:K]
    return [f"d{rows[i]}" for i in order]


def test_each_strategy_finds_the_exact_filtered_neighbours(
    filtered: tuple[RagStore, np.ndarray, dict[str, np.ndarray]],
) -> None:
    store, vectors, meta = filtered
    dense = store.search.engine.dense
    dense.list_allowed_max = 100  # 3,000 vectors: make the 50 % and 10 % filters take the probe
    queries = _vectors(20, seed=9)
    cases = [
        ({"half": 1}, meta["half"] == 1),
        ({"tenth": 3}, meta["tenth"] == 3),
        ({"rare": 7}, meta["rare"] == 7),
        ({"tenth": {"$gte": 8}, "half": 0}, (meta["tenth"] >= 8) & (meta["half"] == 0)),
        ({"$not": {"tenth": {"$lt": 9}}}, meta["tenth"] >= 9),  # no facet lookup: the JSON condition lists
    ]
    for spec, allowed in cases:
        before = (dense.counters.filtered_by_probe, dense.counters.filtered_by_listing)
        found = 0
        for q in queries:
            hits = store.search("f", vector=q.tolist(), k=K, mode="dense", filter=spec).hits
            assert all(np.asarray(allowed)[int(h.source_uri[1:])] for h in hits), spec
            found += len({h.source_uri for h in hits} & set(_exact(vectors, allowed, q)))
        assert found / (K * len(queries)) >= 0.95, spec
        probes = dense.counters.filtered_by_probe - before[0]
        listings = dense.counters.filtered_by_listing - before[1]
        if allowed.mean() >= 0.1:
            assert probes >= len(queries) - 1, spec  # the first search may list while it learns the share
        else:
            assert listings == len(queries), spec


def test_the_flat_copy_follows_writes_after_it_was_built(
    filtered: tuple[RagStore, np.ndarray, dict[str, np.ndarray]],
) -> None:
    store, vectors, _ = filtered
    query = vectors[7]  # d7 has rare = 7
    first = store.search("f", vector=query.tolist(), k=1, mode="dense", filter={"rare": 7}).hits
    assert [h.source_uri for h in first] == ["d7"]  # the listing path built the flat copy
    store.documents.delete_many("f", sources=["d7"])
    moved = (query + 0.001).tolist()
    store.documents.add(
        "f", [{"source_uri": "new", "metadata": {"rare": 7}, "chunks": [{"text": "new chunk", "vector": moved}]}]
    )
    again = store.search("f", vector=query.tolist(), k=2, mode="dense", filter={"rare": 7}).hits
    assert again[0].source_uri == "new" and "d7" not in {h.source_uri for h in again}


def test_flat_vectors_rows_holes_and_packing() -> None:
    flat = FlatVectors(DIM)
    vectors = _vectors(3000, seed=5)
    keys = np.arange(1000, 4000, dtype=np.int64)
    flat.upsert(keys[1500:], vectors[1500:])
    flat.upsert(keys[:1500], vectors[:1500])  # lower keys after higher: the key table grows downwards
    flat.upsert(keys[:10], vectors[10:20])  # overwritten in place
    assert len(flat) == 3000
    flat.delete(keys[100:1300])  # 1,200 holes of 3,000: packed
    flat.delete(np.asarray([5, 999_999], dtype=np.int64))  # unknown keys are ignored
    assert len(flat) == 1800
    live = np.concatenate([keys[:100], keys[1300:]])
    expected = np.concatenate([vectors[10:20], vectors[10:100], vectors[1300:]])
    query = _vectors(1, seed=11)[0]
    allowed = [int(k) for k in live[::3]] + [int(keys[200])]  # a deleted key among the allowed
    got_keys, got_scores = flat.search(query, 5, allowed)
    scores = expected[::3] @ query
    best = np.argsort(-scores)[:5]
    assert list(got_keys) == [int(live[::3][i]) for i in best]
    assert np.allclose(got_scores, scores[best], atol=2e-3)  # half precision


def test_an_8_bit_index_re_ranks_its_candidates_with_the_float32_vectors(
    make_settings: Callable[..., Settings], embedder: CountingEmbedder
) -> None:
    """RAGSTORE_INDEX_DTYPE=i8: the scores shown are the exact float32 cosines, the order theirs."""
    vectors = _vectors(2500, seed=4)  # above the exact-search size: the graph proposes
    with RagStore.open(make_settings(index_dtype="i8"), embedder=embedder) as store:
        store.collections.create("q", embedding_model="given", dimension=DIM)
        store.documents.add(
            "q",
            [
                {"source_uri": f"d{i}", "metadata": {"rare": i % 100}, "chunks": [{"text": f"c {i}", "vector": v}]}
                for i, v in enumerate(vectors.tolist())
            ],
        )
        found = 0
        for q in _vectors(10, seed=12):
            for spec, allowed in ((None, np.ones(2500, bool)), ({"rare": 3}, np.arange(2500) % 100 == 3)):
                hits = store.search("q", vector=q.tolist(), k=K, mode="dense", filter=spec).hits
                exact = _exact(vectors, allowed, q)
                found += len({h.source_uri for h in hits} & set(exact))
                for h in hits:
                    assert h.score == pytest.approx(float(vectors[int(h.source_uri[1:])] @ q), abs=1e-5)
                assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert found / (K * 20) >= 0.97
