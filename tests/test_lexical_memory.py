"""The in-memory BM25 index (lexical/memory.py) on SQLite and PostgreSQL: its ranking is exact BM25 over
every match (checked against a brute-force computation over `chunk_lexemes`), it follows new, deleted and
hidden chunks, filters, prefix terms and Korean text, and the SQL index answers past the memory budget."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.lexical.base import QueryTerm
from ragstore.lexical.memory import MemoryLexicalIndex

from conftest import CountingEmbedder

WORDS = ["환불", "배송", "연차", "휴가", "집에", "집값", "집중", "서울", "부산", "router", "reset", "policy"]
DIM = 4


def corpus(n: int, seed: int = 3) -> list[dict[str, Any]]:
    """Documents of two chunks; words drawn unevenly, so some terms are common and some rare."""
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, len(WORDS) + 1)
    docs = []
    for d in range(n):
        chunks = []
        for _ in range(2):
            words = [WORDS[i] for i in rng.choice(len(WORDS), size=int(rng.integers(3, 12)), p=p / p.sum())]
            chunks.append({"text": " ".join(words), "vector": rng.normal(size=DIM).tolist()})
        metadata = {"shard": d % 3, "rare": d % 40 == 7}
        docs.append({"title": "", "source_uri": f"doc:{d}", "metadata": metadata, "chunks": chunks})
    return docs


@pytest.fixture
def mstore(make_settings: Callable[..., Settings], embedder: CountingEmbedder) -> Iterator[RagStore]:
    settings = make_settings(lexical_analyzer="bigram", companion_model="none", query_log=False)
    with RagStore.open(settings, embedder=embedder) as opened:
        opened.collections.create("kb", embedding_model="given", dimension=DIM)
        yield opened


def memory(store: RagStore) -> MemoryLexicalIndex:
    index = store.components.lexical
    assert isinstance(index, MemoryLexicalIndex)
    return index


def brute_force(
    store: RagStore, terms: list[QueryTerm], shard: int | None = None, rare: bool = False
) -> list[tuple[int, float]]:
    """BM25 (k1 1.2, b 0.75) over the collection's rows, computed the slow way; visible chunks ranked."""
    cid = store.components.catalog.resolve("kb").id
    rows = store.db.fetch(text("SELECT chunk_id, terms FROM chunk_lexemes WHERE collection_id = :c"), {"c": cid})
    shown = {
        int(r[0]): r[1]
        for r in store.db.fetch(
            text(
                "SELECT c.id, d.source_uri FROM document_chunks c JOIN documents d ON d.id = c.document_id "
                "WHERE c.collection_id = :c AND c.status = 'indexed' AND d.status = 'active'"
            ),
            {"c": cid},
        )
    }
    docs = {int(r[0]): r[1].split() for r in rows}
    average = sum(len(w) for w in docs.values()) / len(docs)

    def tf(words: list[str], term: QueryTerm) -> int:
        return sum(1 for w in words if w.startswith(term.text)) if term.prefix else Counter(words)[term.text]

    scores: dict[int, float] = {}
    for term in terms:
        df = sum(1 for words in docs.values() if tf(words, term))
        idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
        for chunk_id, words in docs.items():
            f = tf(words, term)
            if f:
                norm = 1.2 * (1 - 0.75 + 0.75 * len(words) / average)
                scores[chunk_id] = scores.get(chunk_id, 0.0) + idf * f * 2.2 / (f + norm)
    kept = [
        (i, s)
        for i, s in scores.items()
        if i in shown
        and (shard is None or int(shown[i].split(":")[1]) % 3 == shard)
        and (not rare or int(shown[i].split(":")[1]) % 40 == 7)
    ]
    return sorted(kept, key=lambda x: (-x[1], x[0]))


def lexical(store: RagStore, query: str, k: int = 10, **kwargs: Any) -> list[tuple[int, float]]:
    return [(h.chunk_id, h.score) for h in store.search("kb", query, mode="lexical", k=k, **kwargs).hits]


def same(found: list[tuple[int, float]], expected: list[tuple[int, float]]) -> None:
    assert [i for i, _ in found] == [i for i, _ in expected]
    assert [s for _, s in found] == pytest.approx([s for _, s in expected], abs=2e-6)


def terms_of(store: RagStore, query: str) -> list[QueryTerm]:
    return store.components.lexical_indexer.query(store.components.catalog.resolve("kb").id, query)


def test_exact_bm25_follows_writes_deletes_filters_and_prefixes(mstore: RagStore) -> None:
    mstore.documents.add("kb", corpus(120))
    index = memory(mstore)
    for query in ("환불 배송", "서울 router", "연차 휴가 policy", "부산"):
        same(lexical(mstore, query, k=15), brute_force(mstore, terms_of(mstore, query))[:15])
    assert index.builds == 1  # built once, on the first search

    # A one-syllable Hangul word is a prefix term with the bigram analyzer: 집 matches 집에, 집값 and 집중.
    terms = terms_of(mstore, "집")
    assert terms == [QueryTerm("집", prefix=True)]
    expected = brute_force(mstore, terms)
    assert len(expected) > 10
    same(lexical(mstore, "집"), expected[:10])

    # New chunks are appended (no rebuild), with statistics that move with them.
    mstore.documents.add(
        "kb",
        [
            *corpus(30, seed=9),
            {"title": "", "source_uri": "new", "chunks": [{"text": "정거장 우주 정거장", "vector": [1.0, 0, 0, 0]}]},
        ],
    )
    found = lexical(mstore, "우주 정거장")
    assert len(found) == 1
    same(lexical(mstore, "환불 배송", k=15), brute_force(mstore, terms_of(mstore, "환불 배송"))[:15])
    assert index.builds == 1

    # A deleted document's chunks leave the ranking and every statistic at once.
    top = mstore.search("kb", "환불 배송", mode="lexical", k=1).hits[0]
    mstore.documents.delete("kb", top.document_id)
    after = lexical(mstore, "환불 배송", k=15)
    assert top.chunk_id not in [i for i, _ in after]
    same(after, brute_force(mstore, terms_of(mstore, "환불 배송"))[:15])
    assert index.builds == 1

    # A filter ranks exactly among the chunks it passes.
    same(
        lexical(mstore, "서울 policy", k=8, filter={"shard": 1}),
        brute_force(mstore, terms_of(mstore, "서울 policy"), shard=1)[:8],
    )

    # A rare filter (3 documents of 150): its allowed chunks are listed, then kept until the next write.
    for _ in range(2):
        same(
            lexical(mstore, "환불 배송 연차", k=5, filter={"rare": True}),
            brute_force(mstore, terms_of(mstore, "환불 배송 연차"), rare=True)[:5],
        )
    assert len(index._filters._allowed) == 1

    # Coverage (hybrid's test of a weak match) is the share of the query's IDF mass a chunk holds.
    cid = mstore.components.catalog.resolve("kb").id
    with_coverage = index.search(cid, terms_of(mstore, "우주 환불"), 5, with_coverage=True)
    assert with_coverage[0].coverage is not None and 0 < with_coverage[0].coverage <= 1
    sql = index.fallback.search(cid, terms_of(mstore, "우주 환불"), 5, with_coverage=True)
    assert [h.coverage for h in with_coverage if h.chunk_id == found[0][0]] == [
        h.coverage for h in sql if h.chunk_id == found[0][0]
    ]


def test_a_hidden_chunk_is_never_shown_and_the_sql_index_answers_past_the_budget(
    mstore: RagStore, caplog: pytest.LogCaptureFixture
) -> None:
    mstore.documents.add("kb", corpus(60))
    index = memory(mstore)
    query = "환불 연차"
    before = lexical(mstore, query)
    cid = mstore.components.catalog.resolve("kb").id
    # A chunk hidden behind the version's back (its document being deleted): SQL's check drops it.
    hidden = mstore.search("kb", query, mode="lexical", k=1).hits[0]
    mstore.db.write(
        lambda s: s.execute(text("UPDATE documents SET status = 'deleting' WHERE id = :d"), {"d": hidden.document_id})
    )
    assert hidden.chunk_id not in [h.chunk_id for h in index.search(cid, terms_of(mstore, query), 10, version=-1)]
    mstore.db.write(
        lambda s: s.execute(text("UPDATE documents SET status = 'active' WHERE id = :d"), {"d": hidden.document_id})
    )

    # A re-index (a new analyzer state) rebuilds the index.
    builds = index.builds
    mstore.components.lexical_indexer.reindex(cid, force=True)
    same(lexical(mstore, query + " 또"), brute_force(mstore, terms_of(mstore, query + " 또"))[:10])
    assert index.builds == builds + 1

    # Past the budget the collection is searched by FTS5 / the tsvector: the same chunks found.
    index.max_bytes = 1
    index.forget()
    with caplog.at_level("DEBUG", logger="ragstore.lexical.memory"):
        fallback = mstore.search("kb", query + " 다시", mode="lexical").hits
        assert index.postings(cid, 10**6) is None
    # Said once, as a warning naming the setting: a 20x slower search is not left for the user to guess.
    warned = [r for r in caplog.records if r.levelname == "WARNING" and "RAGSTORE_LEXICAL_MEMORY_MB" in r.getMessage()]
    assert len(warned) == 1, caplog.records
    assert {h.chunk_id for h in fallback} & {i for i, _ in before}
