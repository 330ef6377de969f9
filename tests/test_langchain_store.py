"""RagStoreVectorStore beyond LangChain's standard suite: filters, MMR, the retriever's search types (and
ragstore's hybrid mode), relevance scores, metadata that round-trips with its types, the constructors, a
store opened on a data directory, and the message when the extra is missing."""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_helpers import TableEmbeddings, shared_store, typed
from ragstore.errors import Conflict
from ragstore.integrations._extras import MissingExtra
from ragstore.integrations.langchain import RagStoreVectorStore
from ragstore.service import RagStore

Q = [1.0, 0.0, 0.0]
# Against the query Q: A and A2 are nearly the same vector (cosine 0.98), B is further (0.8) but less like A
# (0.67) than A2 is (~1), C is orthogonal to all of them.
A, A2, B, C = [1.0, 0.2, 0.0], [1.0, 0.21, 0.0], [0.8, -0.6, 0.0], [0.0, 0.0, 1.0]
TABLE = {
    "query": Q,
    "refund": Q,
    "alpha: the first answer": A,
    "alpha again: nearly the first answer": A2,
    "beta: another answer": B,
    "gamma: how a refund is requested": C,
}
TEXTS = [t for t in TABLE if t not in ("query", "refund")]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RagStore]:
    with shared_store(request, tmp_path_factory.mktemp("langchain") / "data") as store:
        yield store


@pytest.fixture
def name() -> str:
    return f"lc-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def table_store(shared: RagStore, name: str) -> RagStoreVectorStore:
    """The four texts of TABLE, with metadata to filter on."""
    vectorstore = RagStoreVectorStore(name, TableEmbeddings(TABLE), store=shared)
    metadatas = [{"n": i, "lang": "en" if i % 2 == 0 else "ko", "year": 2019 + i} for i in range(len(TEXTS))]
    vectorstore.add_texts(TEXTS, metadatas, ids=[t.split(":")[0] for t in TEXTS])
    return vectorstore


def ids_of(documents: list[Document]) -> list[str | None]:
    return [d.id for d in documents]


def test_the_collection_records_the_embedding_and_its_dimension(shared: RagStore, name: str) -> None:
    class Named(DeterministicFakeEmbedding):
        model: str = "text-embedding-3-small"

    vectorstore = RagStoreVectorStore(name, Named(size=5), store=shared)
    assert vectorstore.similarity_search("nothing yet") == []  # a search creates nothing
    vectorstore.add_texts(["one"])
    info = shared.collections.get(name)
    assert (info.embedding_model, info.dimension, info.metric) == ("langchain:text-embedding-3-small", 5, "cosine")
    assert (info.document_count, info.chunk_count) == (1, 1)
    # Another embedding over the same collection is refused, for reads and writes alike.
    other = RagStoreVectorStore(name, DeterministicFakeEmbedding(size=5), store=shared)
    with pytest.raises(ValueError, match="langchain:text-embedding-3-small"):
        other.similarity_search("one")
    with pytest.raises(Conflict, match="embedding_model"):
        other.add_texts(["two"])


def test_similarity_with_scores_and_relevance(table_store: RagStoreVectorStore) -> None:
    found = table_store.similarity_search_with_score("query", k=4)
    assert ids_of([d for d, _ in found]) == ["alpha", "alpha again", "beta", "gamma"]
    assert [round(s, 3) for _, s in found] == [0.981, 0.979, 0.8, 0.0]
    relevant = table_store.similarity_search_with_relevance_scores("query", k=4, score_threshold=0.5)
    assert [(d.id, round(s, 3)) for d, s in relevant] == [("alpha", 0.981), ("alpha again", 0.979), ("beta", 0.8)]
    by_vector = table_store.similarity_search_by_vector(B, k=1)
    assert ids_of(by_vector) == ["beta"]


def test_filters_in_ragstores_syntax(table_store: RagStoreVectorStore) -> None:
    assert ids_of(table_store.similarity_search("query", k=4, filter={"lang": "ko"})) == ["alpha again", "gamma"]
    newer = table_store.similarity_search("query", k=4, filter={"year": {"$gte": 2021}, "lang": {"$ne": "ko"}})
    assert ids_of(newer) == ["beta"]
    assert ids_of(table_store.similarity_search_by_vector(Q, k=4, filter={"n": [0, 3]})) == ["alpha", "gamma"]
    chosen = table_store.max_marginal_relevance_search("query", k=2, fetch_k=4, filter={"lang": "en"})
    assert ids_of(chosen) == ["alpha", "beta"]
    retriever = table_store.as_retriever(search_kwargs={"k": 4, "filter": {"$not": {"lang": "en"}}})
    assert ids_of(retriever.invoke("query")) == ["alpha again", "gamma"]


def test_mmr_prefers_a_different_answer_to_a_near_copy(table_store: RagStoreVectorStore) -> None:
    assert ids_of(table_store.similarity_search("query", k=2)) == ["alpha", "alpha again"]
    chosen = table_store.max_marginal_relevance_search("query", k=2, fetch_k=4, lambda_mult=0.5)
    assert ids_of(chosen) == ["alpha", "beta"]
    assert ids_of(table_store.max_marginal_relevance_search_by_vector(Q, k=2, fetch_k=4, lambda_mult=0.5)) == [
        "alpha",
        "beta",
    ]
    assert table_store.max_marginal_relevance_search("query", k=2, fetch_k=4, filter={"n": 99}) == []


def test_retriever_search_types(table_store: RagStoreVectorStore) -> None:
    similarity = table_store.as_retriever(search_kwargs={"k": 2})
    assert ids_of(similarity.invoke("query")) == ["alpha", "alpha again"]
    mmr = table_store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4, "lambda_mult": 0.5})
    assert ids_of(mmr.invoke("query")) == ["alpha", "beta"]
    threshold = table_store.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"k": 4, "score_threshold": 0.9, "mode": None}
    )
    assert ids_of(threshold.invoke("query")) == ["alpha", "alpha again"]


def test_hybrid_mode_finds_the_words_the_vectors_miss(table_store: RagStoreVectorStore) -> None:
    """ "refund" is embedded as Q, orthogonal to the one text that says refund: dense search ranks it last,
    ragstore's hybrid search (the query text and LangChain's vector) brings it up by its word."""
    assert ids_of(table_store.similarity_search("refund", k=2)) == ["alpha", "alpha again"]
    hybrid = table_store.as_retriever(search_kwargs={"k": 2, "mode": "hybrid", "fusion": "rrf"})
    assert "gamma" in ids_of(hybrid.invoke("refund"))
    bridge = table_store.similarity_search("refund", k=4, mode="hybrid")  # the server's default fusion
    assert set(ids_of(bridge)) == {"alpha", "alpha again", "beta", "gamma"}
    assert ids_of(table_store.similarity_search("refund", k=4, mode="lexical")) == ["gamma"]
    with pytest.raises(ValueError, match="mode 'dense'"):
        table_store.similarity_search_with_relevance_scores("refund", k=2, mode="hybrid")
    with pytest.raises(TypeError, match="filters"):
        table_store.similarity_search("refund", filters={"lang": "en"})


async def test_async_search_types(table_store: RagStoreVectorStore) -> None:
    assert ids_of(await table_store.asimilarity_search("query", k=1)) == ["alpha"]
    chosen = await table_store.amax_marginal_relevance_search("query", k=2, fetch_k=4, lambda_mult=0.5)
    assert ids_of(chosen) == ["alpha", "beta"]
    retriever = table_store.as_retriever(search_kwargs={"k": 1, "mode": "hybrid", "fusion": "rrf"})
    assert len(await retriever.ainvoke("refund")) == 1


def test_metadata_and_text_round_trip_with_their_types(shared: RagStore, name: str) -> None:
    metadata = {
        "int": 7,
        "negative": -3,
        "big": 2**53 + 1,
        "float": 1.5,
        "whole_float": 2.0,
        "bool": True,
        "false": False,
        "none": None,
        "ko": "환불 정책",
        "nested": {"list": [1, "둘", {"three": 3.0}, False], "empty": {}},
        "empty_list": [],
    }
    text = "환불은 구매 후 7일 이내에 가능합니다. Refunds: within 7 days."
    vectorstore = RagStoreVectorStore(name, DeterministicFakeEmbedding(size=8), store=shared)
    document = Document(page_content=text, metadata=metadata, id="ko-1")
    vectorstore.add_documents([document])
    assert typed(document.metadata) == typed(metadata) and document.id == "ko-1"  # the input is not changed
    (hit,) = vectorstore.similarity_search(text, k=1)
    (got,) = vectorstore.get_by_ids(["ko-1"])
    for found in (hit, got):
        assert found.id == "ko-1" and found.page_content == text
        assert typed(found.metadata) == typed(metadata)  # nothing added, nothing retyped
    hit.metadata["nested"]["list"].append("changed by the caller")
    assert typed(vectorstore.similarity_search(text, k=1)[0].metadata) == typed(metadata)


def test_upsert_duplicates_and_delete(shared: RagStore, name: str) -> None:
    vectorstore = RagStoreVectorStore(name, DeterministicFakeEmbedding(size=8), store=shared)
    ids = vectorstore.add_texts(["same", "same", "other"], [{"v": 1}, {"v": 2}, {"v": 3}])
    assert len(set(ids)) == 3  # uuid4 strings
    with pytest.raises(ValueError, match="no document without text: blank"):
        vectorstore.add_texts(["fine", " \n"], ids=["fine", "blank"])
    assert [d.metadata["v"] for d in vectorstore.get_by_ids(ids)] == [1, 2, 3]  # equal texts: both stored
    assert sorted(d.metadata["v"] for d in vectorstore.similarity_search("same", k=2)) == [1, 2]
    # The same id again replaces: new text, or the same text with new metadata.
    vectorstore.add_texts(["changed"], [{"v": 10}], ids=[ids[2]])
    vectorstore.add_texts(["same"], [{"v": 20}], ids=[ids[0]])
    assert [(d.page_content, d.metadata) for d in vectorstore.get_by_ids(ids)] == [
        ("same", {"v": 20}),
        ("same", {"v": 2}),
        ("changed", {"v": 10}),
    ]
    assert shared.collections.get(name).document_count == 3
    # Order of the ids asked, missing and repeated ids.
    assert ids_of(vectorstore.get_by_ids([ids[2], "missing", ids[0], ids[2]])) == [ids[2], ids[0]]
    assert vectorstore.delete([ids[1], "missing"]) is True
    assert ids_of(vectorstore.get_by_ids(ids)) == [ids[0], ids[2]]
    assert vectorstore.delete() is True  # no ids: everything
    assert vectorstore.similarity_search("same", k=4) == []
    assert shared.collections.get(name).document_count == 0


def test_from_texts_and_from_documents(shared: RagStore, name: str) -> None:
    embedding = DeterministicFakeEmbedding(size=8)
    vectorstore = RagStoreVectorStore.from_texts(
        ["one", "two"], embedding, [{"n": 1}, {"n": 2}], ids=["1", "2"], collection_name=name, store=shared
    )
    assert [(d.id, d.page_content, d.metadata) for d in vectorstore.similarity_search("two", k=1)] == [
        ("2", "two", {"n": 2})
    ]
    documents = [Document(page_content="three", metadata={"n": 3}, id="3"), Document(page_content="four")]
    again = RagStoreVectorStore.from_documents(documents, embedding, collection_name=name, store=shared)
    assert documents[1].id is None
    assert {d.page_content for d in again.similarity_search("x", k=10)} == {"one", "two", "three", "four"}
    assert again.get_by_ids(["3"]) == [Document(page_content="three", metadata={"n": 3}, id="3")]
    with pytest.raises(ValueError, match="exactly one of store, data_dir or client"):
        RagStoreVectorStore(name, embedding)
    with pytest.raises(ValueError, match="got store, data_dir"):
        RagStoreVectorStore(name, embedding, store=shared, data_dir="data")


def test_a_store_of_its_own_on_a_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`data_dir` opens a store (the environment's settings apply, as for the CLI) and `close()` closes it;
    what was added is there when the directory is opened again."""
    monkeypatch.setenv("RAGSTORE_COMPANION_MODEL", "none")
    monkeypatch.setenv("RAGSTORE_HEALTH_SNAPSHOT_SCHEDULE", "")
    embedding = DeterministicFakeEmbedding(size=8)
    with RagStoreVectorStore.from_texts(
        ["kept on disk"], embedding, ids=["disk"], collection_name="kb", data_dir=tmp_path / "data"
    ) as vectorstore:
        assert ids_of(vectorstore.similarity_search("kept on disk", k=1)) == ["disk"]
    assert vectorstore._owned is None
    with RagStoreVectorStore("kb", embedding, data_dir=tmp_path / "data") as reopened:
        assert reopened.get_by_ids(["disk"]) == [Document(page_content="kept on disk", id="disk")]


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in [m for m in sys.modules if m.startswith("ragstore.integrations.langchain")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "langchain_core", None)  # what an install without the extra looks like
    with pytest.raises(MissingExtra, match=r"pip install 'ragstore\[langchain\]'"):
        importlib.import_module("ragstore.integrations.langchain")


def test_importing_ragstore_imports_no_langchain() -> None:
    probe = "import sys, ragstore, ragstore.service; print(sorted(m for m in sys.modules if 'langchain' in m))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
