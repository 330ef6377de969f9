"""Concurrent query embeddings share model calls and still get their own vectors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ragstore.embeddings.batching import QueryBatcher
from ragstore.embeddings.local import LocalEmbedder


def test_concurrent_queries_are_embedded_in_shared_calls(local_embedder: LocalEmbedder) -> None:
    queries = [f"전세 계약 갱신 조건 {i}" for i in range(24)]
    alone = {q: local_embedder.embed([q], kind="query")[0] for q in queries}
    batcher = QueryBatcher(local_embedder, max_batch=8)
    results: dict[str, np.ndarray] = {}
    start = threading.Barrier(len(queries))

    def ask(query: str) -> None:
        start.wait()
        results[query] = batcher.embed(query)

    threads = [threading.Thread(target=ask, args=(q,)) for q in queries]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    batcher.close()
    assert batcher.queries == len(queries) and batcher.calls < len(queries)
    for query in queries:
        np.testing.assert_allclose(results[query], alone[query], atol=1e-4)


def test_a_failing_batch_fails_every_waiting_query_and_the_batcher_goes_on(local_embedder: LocalEmbedder) -> None:
    class Failing:
        backend, model, dimension = "local", local_embedder.model, local_embedder.dimension
        fail = True

        def embed(self, texts: list[str], *, kind: str) -> np.ndarray:
            if self.fail:
                raise RuntimeError("model crashed")
            return local_embedder.embed(texts, kind="query")

    inner = Failing()
    batcher = QueryBatcher(inner)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="model crashed"):
        batcher.embed("first")
    inner.fail = False
    assert batcher.embed("second").shape == (local_embedder.dimension,)
    batcher.close()


def test_a_searchs_texts_queued_together_ride_in_one_call_with_other_searches() -> None:
    """The companion's path (documents/companion.py): each search queues its text and its unknown words."""
    companion = LocalEmbedder("use-multilingual-v3")
    searches = [[f"campground {i}", f"야영장{i}", "permit"] for i in range(12)]
    alone = {t: companion.embed([t], kind="query")[0] for texts in searches for t in texts}
    batcher = QueryBatcher(companion, max_batch=32)
    results: dict[int, list[np.ndarray]] = {}
    start = threading.Barrier(len(searches))

    def ask(i: int) -> None:
        start.wait()
        results[i] = batcher.embed_queued(searches[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(searches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    single = batcher.embed_queued(["alone in its call"])
    batcher.close()
    assert batcher.queries == 3 * len(searches) + 1 and batcher.calls < len(searches)
    for i, texts in enumerate(searches):
        assert len(results[i]) == 3
        for text, vector in zip(texts, results[i], strict=True):
            np.testing.assert_allclose(vector, alone[text], atol=1e-4)
    np.testing.assert_allclose(single[0], companion.embed(["alone in its call"], kind="query")[0], atol=1e-4)
