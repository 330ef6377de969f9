"""Hybrid search across languages (issue #19): the bridge fusion, the companion embedding and the term bridge.

Every test runs on SQLite and PostgreSQL with the real packaged models (e5 and USE) and kiwi.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ragstore import RagStore
from ragstore.api.app import create_app
from ragstore.config import Settings
from ragstore.db.models import DocumentChunk, Embedding
from ragstore.lexical.base import QueryTerm
from ragstore.lexical.memory import MemoryLexicalIndex
from ragstore.text.hashing import content_hash

COMPANION = "use-multilingual-v3"

# Two near neighbours about one campground (one English, one Korean), and unrelated passages in both languages.
PASSAGES = [
    (
        "odaesan-caravan",
        "Sogeumgang campground, Odaesan National Park",
        "Caravan pitches at Sogeumgang campground in Odaesan National Park cost 40,000 won per night; "
        "tent pitches cost 15,000 won. Check-in starts at 2 pm and quiet hours begin at 10 pm.",
    ),
    (
        "odaesan-booking",
        "오대산 소금강 야영장 예약 안내",
        "소금강 야영장 예약은 국립공원공단 예약시스템에서 매월 1일 오전 10시에 다음 달 분을 엽니다. "
        "예약 취소는 이용 3일 전까지 수수료 없이 가능합니다.",
    ),
    (
        "bike-fares",
        "서울 공공자전거 요금",
        "서울 공공자전거 따릉이 일일권은 1시간 1,000원, 2시간 2,000원입니다. 정기권은 앱에서 결제합니다.",
    ),
    (
        "library-loans",
        "City library loans",
        "The city library lends up to five books for two weeks. A late book suspends borrowing for as many "
        "days as it is late.",
    ),
    (
        "kimchi",
        "배추김치 담그는 법",
        "배추를 소금에 절여 6시간 두었다가 헹구고, 고춧가루와 마늘, 젓갈로 만든 양념을 켜켜이 바릅니다.",
    ),
    (
        "temple-stay",
        "Temple stay at Woljeongsa",
        "Woljeongsa temple stay programme: one night with morning chanting, tea with a monk and a walk "
        "through the fir forest. The fee is 80,000 won for adults.",
    ),
]
KO_ABOUT_EN = "오대산 야영장에서 카라반 하룻밤 요금은 얼마인가요?"


def load(store: RagStore, name: str = "kb") -> None:
    store.collections.create(name)
    store.documents.add(name, [{"text": text, "title": title, "source_uri": uri} for uri, title, text in PASSAGES])


@pytest.fixture
def kb(store: RagStore) -> RagStore:
    load(store)
    return store


def top(store: RagStore, query: str, **options: Any) -> str:
    return store.search("kb", query, k=5, **options).hits[0].source_uri


def test_a_korean_question_finds_the_english_passage(kb: RagStore) -> None:
    assert top(kb, KO_ABOUT_EN) == "odaesan-caravan"
    # Reciprocal rank fusion (before issue #19) ranks the Korean neighbour first: it shares the words.
    assert top(kb, KO_ABOUT_EN, fusion="rrf") == "odaesan-booking"
    # An English question about a Korean passage, and a question in each passage's own language.
    assert top(kb, "How much is a one-hour public bike pass in Seoul?") == "bike-fares"
    assert top(kb, "소금강 야영장 예약은 언제 열리나요?") == "odaesan-booking"
    assert top(kb, "how long can I borrow library books") == "library-loans"


def test_ingest_stores_the_companion_vectors_of_chunks_and_terms(kb: RagStore) -> None:
    with kb.db.read() as s:
        hashes = list(s.scalars(select(DocumentChunk.content_hash)))
        stored = set(
            s.scalars(select(Embedding.content_hash).where(Embedding.model == COMPANION, Embedding.dimension == 512))
        )
    assert set(hashes) <= stored
    # The vocabulary's terms too (kiwi's analysed forms), under each term's own hash.
    assert {content_hash("campground"), content_hash("야영장")} <= stored


def test_the_term_bridge_adds_the_other_languages_terms(kb: RagStore) -> None:
    bridge = kb.components.term_bridge
    assert bridge is not None
    coll_id = kb.components.catalog.resolve("kb").id
    state = kb.components.lexical_indexer.state(coll_id)
    expanded = bridge.expand(coll_id, state, [QueryTerm("야영장"), QueryTerm("카라반")])
    assert expanded[:2] == [QueryTerm("야영장"), QueryTerm("카라반")]
    added = {t.text: t.weight for t in expanded[2:]}
    assert "campground" in added and "caravan" in added
    assert all(0.5 <= w < 1 and t.isascii() for t, w in added.items())  # only the other script, cosine >= 0.5
    # A collection's new terms are bridged once a search has seen its version move.
    kb.documents.add_text("kb", "Kayak rentals on the lake cost 20,000 won an hour.", title="Kayaks")
    kb.search("kb", "카약", k=1)
    again = bridge.expand(coll_id, kb.components.lexical_indexer.state(coll_id), [QueryTerm("카약")])
    assert "kayak" in {t.text for t in again}


def test_the_term_bridge_leaves_out_common_costly_terms(kb: RagStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """An added term in more than MAX_ADDED_SHARE of the chunks and more than COSTLY_POSTINGS of them is
    left out; the thresholds are scaled down here to a collection a test can hold."""
    from ragstore.search import term_bridge

    kb.documents.add(
        "kb",
        [
            {"text": f"The campground by lake {n} has {n + 10} pitches and a shop.", "title": f"Lake {n}"}
            for n in range(4)
        ],
    )
    kb.search("kb", "야영장", k=1)  # the vocabulary takes the new chunks' terms
    bridge = kb.components.term_bridge
    assert bridge is not None
    coll_id = kb.components.catalog.resolve("kb").id
    state = kb.components.lexical_indexer.state(coll_id)
    # A word the collection has never seen is encoded for the query (a stored term's vector is read).
    words = [QueryTerm("야영장"), QueryTerm("카라반"), QueryTerm("캠핑장")]
    before = {t.text for t in bridge.expand(coll_id, state, words)[3:]}
    assert {"campground", "caravan"} <= before
    monkeypatch.setattr(term_bridge, "COSTLY_POSTINGS", 2)
    monkeypatch.setattr(term_bridge, "MAX_ADDED_SHARE", 0.3)  # "campground": 5 of 10 chunks; "caravan": 1
    after = {t.text for t in bridge.expand(coll_id, state, words)[3:]}
    assert "campground" not in after and "caravan" in after
    assert after <= before  # the rule only leaves terms out


def test_a_started_server_builds_the_vocabularies_before_the_first_search(
    make_settings: Callable[..., Settings], embedder: Any
) -> None:
    settings = make_settings()
    with RagStore.open(settings, embedder=embedder) as store:
        load(store)
    with RagStore.open(settings, embedder=embedder) as store:  # a new process: no vocabulary in memory
        bridge = store.components.term_bridge
        assert bridge is not None
        thread = store.prepare_search()
        assert thread is not None
        thread.join(timeout=60)
        assert not thread.is_alive()
        reads: list[int] = []
        original = bridge.companion.terms
        bridge.companion.terms = lambda terms: reads.append(1) or original(terms)  # type: ignore[method-assign,func-returns-value]
        assert top(store, KO_ABOUT_EN) == "odaesan-caravan"
        assert reads == []  # the search found the vocabulary built: it read no term vectors
        lexical = store.components.lexical
        assert isinstance(lexical, MemoryLexicalIndex) and lexical.builds == 1  # built before, not by the search
    with RagStore.open(make_settings(hybrid_fusion="rrf", lexical_memory_mb=0), embedder=embedder) as store:
        assert store.prepare_search() is None  # nothing to build without the bridge or the in-memory index


def test_a_store_without_companion_vectors_computes_them_on_first_use(
    make_settings: Callable[..., Settings], embedder: Any
) -> None:
    settings = make_settings(companion_model="none")
    with RagStore.open(settings, embedder=embedder) as store:
        load(store)
        # With no companion the bridge still fuses e5 and the lexical side (no expansion, no second cosine).
        hits = store.search("kb", "소금강 야영장 예약", k=3, explain=True).hits
        assert hits[0].source_uri == "odaesan-booking" and hits[0].explain["companion_score"] is None  # type: ignore[index]
        with store.db.read() as s:
            assert not s.scalar(select(func.count()).where(Embedding.model == COMPANION))
    with RagStore.open(make_settings(), embedder=embedder) as store:
        assert top(store, KO_ABOUT_EN) == "odaesan-caravan"
        with store.db.read() as s:
            hashes = set(s.scalars(select(DocumentChunk.content_hash)))
            computed = set(s.scalars(select(Embedding.content_hash).where(Embedding.model == COMPANION)))
        assert hashes <= computed  # every candidate's companion vector, stored for the next search


def test_vectors_a_caller_brings_cost_no_companion_at_ingest(store: RagStore) -> None:
    """A collection of the caller's vectors (a LangChain or LlamaIndex store) is embedded by no ragstore
    model at ingest, the companion included; a bridge search computes its candidates' companion vectors."""
    store.collections.create("byo", embedding_model="their-model", dimension=3)
    texts = {"tents": "Campground reservations open on the first of the month.", "fares": "A bus ride costs 1,500 won."}
    vectors = {"tents": [1.0, 0.0, 0.0], "fares": [0.0, 1.0, 0.0]}
    store.documents.add(
        "byo",
        [{"source_uri": k, "text": t, "chunks": [{"text": t, "vector": vectors[k]}]} for k, t in texts.items()],
    )
    with store.db.read() as s:
        assert not s.scalar(select(func.count()).where(Embedding.model == COMPANION))
    hits = store.search("byo", "campground reservations", vector=[0.9, 0.1, 0.0], k=2, mode="hybrid", explain=True)
    assert hits.mode == "hybrid" and hits.hits[0].source_uri == "tents"
    with store.db.read() as s:
        assert s.scalar(select(func.count()).where(Embedding.model == COMPANION))  # computed on first use


def test_the_bridge_follows_filters_pages_and_weights(kb: RagStore) -> None:
    english = kb.search("kb", KO_ABOUT_EN, k=5, filter={"title": "Temple stay at Woljeongsa"}).hits
    assert [h.source_uri for h in english] == ["temple-stay"]
    whole = [h.chunk_id for h in kb.search("kb", KO_ABOUT_EN, k=6).hits]
    page = kb.search("kb", KO_ABOUT_EN, k=3)
    rest = kb.search("kb", KO_ABOUT_EN, k=3, cursor=page.next_cursor)
    assert [h.chunk_id for h in page.hits + rest.hits] == whole
    lexical_only = kb.search("kb", "소금강 야영장", k=3, dense_weight=0, explain=True).hits
    assert lexical_only and all(h.explain["lexical_rank"] is not None for h in lexical_only)  # type: ignore[index]


@pytest.fixture
def client(kb: RagStore) -> Iterator[TestClient]:
    with TestClient(create_app(store=kb)) as test_client:
        yield test_client


def test_the_api_takes_the_fusion(client: TestClient) -> None:
    def ask(**body: Any) -> Any:
        return client.post("/v1/collections/kb/search", json={"query": KO_ABOUT_EN, "k": 1, **body})

    assert ask().json()["hits"][0]["source_uri"] == "odaesan-caravan"
    assert ask(fusion="bridge").json()["hits"][0]["source_uri"] == "odaesan-caravan"
    assert ask(fusion="rrf").json()["hits"][0]["source_uri"] == "odaesan-booking"
    bad = ask(fusion="sum")
    assert bad.status_code == 422 and "fusion" in bad.json()["error"]["message"]


def test_a_bridged_search_reads_each_sides_rows_and_vectors_in_one_statement(kb: RagStore) -> None:
    """Issue #22: on PostgreSQL every read is a round trip. The dense side reads its hits' rows with their
    vectors, the lexical side's visibility check reads its candidates' rows and vectors, and the page is shown
    from what they read (before: seven statements). Counted on PostgreSQL, where every read goes through
    SQLAlchemy (SQLite's search reads run on the raw driver)."""
    from sqlalchemy import event

    if kb.db.is_sqlite:
        pytest.skip("SQLite's search reads bypass SQLAlchemy's events")
    assert top(kb, KO_ABOUT_EN) == "odaesan-caravan"  # the vocabulary and the indexes are built
    statements: list[str] = []

    def counted(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "document_chunks" in statement or "embeddings" in statement:  # not the sync worker's
            statements.append(statement)

    raw = kb.db.raw_postgres_rows

    def raw_counted(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        counted(None, None, sql)  # the same rule: the write version's read (raw too) is not a row read
        return raw(sql, params)

    kb.db.raw_postgres_rows = raw_counted  # type: ignore[method-assign]
    event.listen(kb.db.engine, "before_cursor_execute", counted)
    try:
        # Unfiltered: the query words' stored vectors, the dense side's rows and vectors, the lexical side's
        # check with its candidates' rows and vectors. A filter passing every chunk is checked in SQL on both
        # sides, and the fusion then reads the candidates' rows and vectors (before: five statements).
        for filter_spec, most in ((None, 3), ({"missing": {"$exists": False}}, 4)):
            statements.clear()
            hits = kb.search("kb", KO_ABOUT_EN + " 요금", k=3, explain=True, filter=filter_spec).hits
            assert hits[0].source_uri == "odaesan-caravan"
            assert all(h.text and h.explain and h.explain["companion_score"] is not None for h in hits)
            assert len(statements) <= most, statements
    finally:
        event.remove(kb.db.engine, "before_cursor_execute", counted)
        kb.db.raw_postgres_rows = raw  # type: ignore[method-assign]


def test_the_companion_reads_a_words_stored_vector_once(kb: RagStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A query's words recur: their stored companion vectors are kept in the process, and only a hash not kept
    is read again (a vector of one text under one model does not change, so no invalidation)."""
    bridge = kb.components.term_bridge
    assert bridge is not None
    companion = bridge.companion
    words = {content_hash(w): w for w in ("campground", "야영장")}
    first = companion.stored(words)
    assert set(first) == set(words)
    reads: list[list[str]] = []
    # Both dialects read on the raw driver: SQLite's list of hashes as one JSON parameter, PostgreSQL's as an array.
    name = "raw_sqlite_rows" if kb.db.is_sqlite else "raw_postgres_rows"
    raw = getattr(kb.db, name)

    def counted_raw(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        reads.append(json.loads(params[-1]) if kb.db.is_sqlite else list(params[-1]))
        return raw(sql, params)

    monkeypatch.setattr(kb.db, name, counted_raw)
    again = companion.stored([*words, content_hash("fir forest")])
    assert all((again[h] == first[h]).all() for h in words)
    assert reads == [[content_hash("fir forest")]]  # only the hash not read before
