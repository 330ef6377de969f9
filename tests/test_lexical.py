"""The lexical index on SQLite (FTS5) and PostgreSQL (tsvector): Korean matching, lockstep with the chunks,
the analyzer recorded and a change of analyzer re-indexing, and bad input."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select, text

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.db.models import ChunkLexeme, LexicalIndexState
from ragstore.errors import InvalidInput, Unavailable
from ragstore.lexical.base import QueryTerm, clean_terms, query_terms
from ragstore.lexical.sqlite_fts import fts_match

from conftest import CountingEmbedder

DOCS = [
    {"title": "연차", "text": "연차휴가는 입사 1년 후 15일이 주어지며, 사용하지 않은 연차는 수당으로 지급됩니다."},
    {"title": "환불", "text": "환불을 원하시면 구매일로부터 7일 이내에 고객센터로 신청해 주세요."},
    {"title": "배송", "text": "배송은 결제 후 평균 2일이 걸리며, 제주 지역은 하루가 더 걸립니다."},
    {"title": "wifi", "text": "If the KX-720 router drops Wi-Fi, hold the reset button for 10 seconds."},
]


def lexical_titles(store: RagStore, query: str, **kwargs: object) -> list[str]:
    return [h.title for h in store.search("kb", query, mode="lexical", **kwargs).hits]  # type: ignore[arg-type]


def count_lexemes(store: RagStore) -> int:
    with store.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(ChunkLexeme)) or 0)


def fts_rows(store: RagStore, match: str) -> int:
    """What the full-text structure itself holds (FTS5 table or tsvector), not just the terms table."""
    with store.db.read() as s:
        if store.db.is_sqlite:
            return int(
                s.scalar(text("SELECT count(*) FROM chunk_lexemes_fts WHERE chunk_lexemes_fts MATCH :m"), {"m": match})
                or 0
            )
        return int(
            s.scalar(text("SELECT count(*) FROM chunk_lexemes WHERE tsv @@ to_tsquery('simple', :m)"), {"m": match})
            or 0
        )


def test_korean_words_with_particles_match_their_stem(store: RagStore) -> None:
    store.collections.create("kb")
    store.documents.add("kb", DOCS)
    assert lexical_titles(store, "연차")[0] == "연차"
    assert lexical_titles(store, "환불 신청")[0] == "환불"  # the passage says 환불을 and 신청해
    assert lexical_titles(store, "배송은 며칠")[0] == "배송"
    assert lexical_titles(store, "kx-720 reset")[0] == "wifi"
    assert lexical_titles(store, "우주 정거장") == []  # nothing shares a term: no result, not noise


def test_terms_are_written_and_deleted_with_the_chunks(store: RagStore) -> None:
    store.collections.create("kb")
    outcomes = store.documents.add("kb", DOCS)
    assert count_lexemes(store) == 4 and fts_rows(store, "환불") == 1
    store.documents.delete("kb", outcomes[1].document_id or 0)
    assert lexical_titles(store, "환불") == []
    assert count_lexemes(store) == 3 and fts_rows(store, "환불") == 0
    # Replacing a document (same source, new text) replaces its terms.
    store.documents.add("kb", [{"text": "배송 기간이 3일로 바뀌었습니다. 도서 지역은 5일.", "source_uri": "policy"}])
    store.documents.add("kb", [{"text": "배송 기간이 4일로 바뀌었습니다. 반품도 가능합니다.", "source_uri": "policy"}])
    assert fts_rows(store, "도서") == 0 and fts_rows(store, "반품") == 1
    store.collections.delete("kb")
    assert count_lexemes(store) == 0


def test_a_refused_ingest_leaves_no_terms(store: RagStore) -> None:
    store.collections.create("kb")
    with pytest.raises(InvalidInput, match="dimension"):
        store.documents.add("kb", [{"text": "환불 규정", "chunks": [{"text": "환불", "vector": [1.0, 2.0]}]}])
    assert count_lexemes(store) == 0


def test_the_analyzer_is_recorded_and_a_change_reindexes(
    make_settings: Callable[..., Settings], embedder: CountingEmbedder
) -> None:
    with RagStore.open(make_settings(lexical_analyzer="bigram"), embedder=embedder) as store:
        store.collections.create("kb")
        store.documents.add("kb", DOCS)
        assert store.index.lexical_status()[0].analyzer == "bigram"
        # Bigrams: a one-syllable query word is looked up as a prefix of the stored bigrams.
        assert lexical_titles(store, "환불")[0] == "환불"
    with RagStore.open(make_settings(lexical_analyzer="kiwi"), embedder=embedder) as store:
        assert store.recovery.relexed_collections  # re-indexed at open
        status = store.index.lexical_status()[0]
        assert status.analyzer == "kiwi" and status.current
        with store.db.read() as s:
            terms = s.scalars(select(ChunkLexeme.terms)).all()
            assert s.scalar(select(func.count()).select_from(LexicalIndexState)) == 1
        assert any("환불" in t.split() for t in terms)  # a morpheme, not the bigram pieces of 환불을
        assert lexical_titles(store, "환불을 하려면")[0] == "환불"
        assert store.index.relex("kb").chunks_analysed == {"kb": 4}  # forced: the same analyzer again


def test_an_index_built_by_an_analyzer_this_process_cannot_reproduce_is_refused_clearly(store: RagStore) -> None:
    store.collections.create("kb")
    store.documents.add("kb", DOCS[:1])
    collection_id = store.components.catalog.resolve("kb").id
    store.db.write(
        lambda s: s.execute(
            text("UPDATE lexical_indexes SET analyzer_version = 'kiwipiepy-0.0.1' WHERE collection_id = :c"),
            {"c": collection_id},
        )
    )
    store.components.lexical_indexer.forget()
    with pytest.raises(Unavailable, match="cannot reproduce"):
        store.documents.add("kb", DOCS[1:2])
    assert count_lexemes(store) == 1  # nothing half-written
    with pytest.raises(Unavailable, match="cannot reproduce"):
        store.search("kb", "연차", mode="lexical")
    degraded = store.search("kb", "연차")  # hybrid serves its dense side
    assert degraded.mode == "dense" and degraded.hits[0].title == "연차"


def test_query_terms_are_cleaned_deduplicated_and_bounded() -> None:
    assert clean_terms(["3.5", "c++", "wi-fi", "_x_"]) == ["3", "5", "c", "wi", "fi", "x"]
    terms = query_terms(["집", "집에", "집", "abc"], prefix_single_syllables=True)
    assert terms == [QueryTerm("집", prefix=True), QueryTerm("집에"), QueryTerm("abc")]
    assert len(query_terms([f"t{i}" for i in range(500)])) == 64
    # Quotes cannot break out of an FTS5 string; AND/OR/NEAR are terms, not operators.
    assert fts_match([QueryTerm('a"b'), QueryTerm("OR"), QueryTerm("집", prefix=True)]) == '"a""b" OR "OR" OR "집" *'


@pytest.mark.parametrize(
    "query", ['"', "AND", "NEAR(", "*", "a:b", "(()", "'; DROP TABLE chunk_lexemes; --", "!!!", "ㅋㅋㅋ"]
)
def test_hostile_or_empty_queries_never_fail(store: RagStore, query: str) -> None:
    store.collections.create("kb")
    store.documents.add("kb", DOCS)
    store.search("kb", query, mode="lexical")
    store.search("kb", query, mode="hybrid")
    assert count_lexemes(store) == 4


def test_a_store_from_before_the_lexical_index_gets_its_terms_at_open(
    make_settings: Callable[..., Settings], embedder: CountingEmbedder
) -> None:
    from ragstore.migrations import Migrator

    settings = make_settings()
    with RagStore.open(settings, embedder=embedder) as store:
        store.collections.create("kb")
        store.documents.add("kb", DOCS)
        Migrator(store.db.engine).downgrade("0004")  # the chunks stay; the lexical tables go
    with RagStore.open(settings, embedder=embedder) as store:  # upgrades, then analyses every chunk
        assert store.recovery.relexed_collections == [store.components.catalog.resolve("kb").id]
        assert count_lexemes(store) == 4 and store.index.lexical_status()[0].current
        assert lexical_titles(store, "환불")[0] == "환불"
    with RagStore.open(settings, embedder=embedder) as store:
        assert store.recovery.relexed_collections == []  # once
