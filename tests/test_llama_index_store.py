"""RagStoreVectorStore against LlamaIndex's vector store contract, on SQLite and PostgreSQL.

LlamaIndex ships no standard suite for vector stores, so this one follows LangChain's
VectorStoreIntegrationTests (langchain_tests/integration_tests/vectorstores.py): each test starts from an
empty store and checks one promise of the interface, through the interface only. One RagStore per database
per module (opening one costs more than every test here), and a new collection per test, which is what
"empty" means for this store.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.schema import BaseNode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from ragstore.config import Settings
from ragstore.integrations.llama_index import RagStoreVectorStore, UnsupportedFilter
from ragstore.schemas import DocumentInput
from ragstore.service import RagStore

DIM = 8


def vector(axis: int, *, lean: int | None = None) -> list[float]:
    """A unit vector along `axis`, tilted a little toward `lean`: similarities are known in advance."""
    v = [0.0] * DIM
    v[axis % DIM] = 1.0
    if lean is not None:
        v[lean % DIM] = 0.25
    return v


def node(
    node_id: str, text: str, axis: int, *, doc: str = "doc-a", embedding: list[float] | None = None, **meta: Any
) -> TextNode:
    return TextNode(
        id_=node_id,
        text=text,
        embedding=embedding or vector(axis),
        metadata=meta,
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)},
    )


# Five nodes of two source documents, each along its own axis, with metadata for every filter operator.
FRUIT = [
    node("apple", "Apples are crisp red fruit.", 0, doc="doc-a", kind="fruit", price=3, rating=4.5, lang="en"),
    node("banana", "Bananas are soft yellow fruit.", 1, doc="doc-a", kind="fruit", price=1, lang="en", tag=""),
    node("cherry", "Cherries are small red stone fruit.", 2, doc="doc-b", kind="fruit", price=7, lang="de"),
    node("carrot", "Carrots are orange root vegetables.", 3, doc="doc-b", kind="vegetable", price=2, lang="en"),
    node("kale", "Kale is a leafy green vegetable.", 4, doc="doc-c", kind="vegetable", price=5, tag=None),
]


def ids(nodes: list[BaseNode]) -> list[str]:
    return sorted(n.node_id for n in nodes)


def dense(axis: int, k: int = 10, **fields: Any) -> VectorStoreQuery:
    return VectorStoreQuery(query_embedding=vector(axis), similarity_top_k=k, **fields)


def eq(key: str, value: Any, op: FilterOperator = FilterOperator.EQ) -> MetadataFilters:
    return MetadataFilters(filters=[MetadataFilter(key=key, value=value, operator=op)])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ragstore(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RagStore]:
    """One store per database for the module; no companion model (nothing here searches across languages)."""
    with pytest.MonkeyPatch.context() as env:
        for key in list(os.environ):
            if key.startswith(("RAGSTORE_", "OPENAI_", "SQLITE_")) and not key.startswith("RAGSTORE_TEST_"):
                env.delenv(key)
        env.delenv("DATABASE_URL", raising=False)
        fields: dict[str, Any] = {
            "data_dir": tmp_path_factory.mktemp("llama") / "data",
            "auth": "off",
            "health_snapshot_schedule": "",
            "companion_model": "none",
        }
        schema = None
        if request.param == "postgresql":
            from pgtools import create_schema, drop_schema

            run_url = request.getfixturevalue("postgres_run_url")
            schema, fields["database_url"] = create_schema(run_url)
        try:
            with RagStore.open(Settings(**fields)) as store:
                yield store
        finally:
            if schema is not None:
                drop_schema(run_url, schema)


@pytest.fixture
def store(ragstore: RagStore) -> RagStoreVectorStore:
    """An empty vector store: a collection no test has used."""
    return RagStoreVectorStore(f"li_{uuid.uuid4().hex[:10]}", store=ragstore)


@pytest.fixture
def fruit(store: RagStoreVectorStore) -> RagStoreVectorStore:
    store.add(FRUIT)
    return store


# -- empty store, add, upsert ---------------------------------------------------------------------------------
def test_empty_store_finds_nothing(store: RagStoreVectorStore) -> None:
    assert store.query(dense(0)).nodes == []
    assert store.get_nodes() == []
    store.delete("doc-a")  # deleting from a collection that does not exist yet is no error
    store.delete_nodes(["apple"])
    store.clear()
    assert store.stores_text and store.client is not None


def test_add_returns_ids_and_the_nodes_are_found(store: RagStoreVectorStore) -> None:
    assert store.add(FRUIT) == [n.node_id for n in FRUIT]
    result = store.query(dense(2, k=2))
    assert result.ids == ["cherry", result.ids[1]]
    assert result.similarities is not None and result.similarities[0] == pytest.approx(1.0)
    assert result.nodes is not None and result.nodes[0].get_content() == FRUIT[2].text
    assert ids(store.get_nodes()) == ids(FRUIT)


def test_add_nothing(store: RagStoreVectorStore) -> None:
    assert store.add([]) == []


def test_add_is_idempotent_by_node_id(fruit: RagStoreVectorStore) -> None:
    fruit.add(FRUIT)
    fruit.add(FRUIT[:2])
    assert ids(fruit.get_nodes()) == ids(FRUIT)
    assert len(fruit.query(dense(0)).nodes or []) == len(FRUIT)


def test_add_by_id_replaces_the_node(fruit: RagStoreVectorStore) -> None:
    fruit.add([node("apple", "Apples can also be green.", 5, doc="doc-a", kind="fruit", price=4)])
    (got,) = fruit.get_nodes(["apple"])
    assert got.get_content() == "Apples can also be green." and got.metadata["price"] == 4
    assert fruit.query(dense(5, k=1)).ids == ["apple"]
    assert len(fruit.get_nodes()) == len(FRUIT)


def test_add_by_id_with_new_metadata_only_replaces_it(fruit: RagStoreVectorStore) -> None:
    fruit.add([node("kale", FRUIT[4].text, 4, doc="doc-c", kind="vegetable", price=6)])
    assert fruit.get_nodes(["kale"])[0].metadata == {"kind": "vegetable", "price": 6}
    assert fruit.query(dense(4, filters=eq("price", 6))).ids == ["kale"]


def test_same_text_twice_stays_two_nodes(store: RagStoreVectorStore) -> None:
    store.add([node("one", "The same words.", 0), node("two", "The same words.", 0, doc="doc-z")])
    assert ids(store.get_nodes()) == ["one", "two"]


def test_one_id_twice_in_a_batch_keeps_the_last(store: RagStoreVectorStore) -> None:
    assert store.add([node("x", "first", 0), node("x", "second", 1)]) == ["x", "x"]
    assert [n.get_content() for n in store.get_nodes()] == ["second"]


def test_add_refuses_a_node_without_embedding_or_text(store: RagStoreVectorStore) -> None:
    with pytest.raises(ValueError, match="no embedding"):
        store.add([TextNode(id_="bare", text="text")])
    with pytest.raises(ValueError, match="no text"):
        store.add([TextNode(id_="blank", text="  \n", embedding=vector(0))])


# -- delete, get, clear ---------------------------------------------------------------------------------------
def test_delete_removes_every_node_of_the_source_document(fruit: RagStoreVectorStore) -> None:
    fruit.delete("doc-a")
    assert ids(fruit.get_nodes()) == ["carrot", "cherry", "kale"]
    assert "apple" not in (fruit.query(dense(0)).ids or [])
    fruit.delete("no-such-doc")
    assert len(fruit.get_nodes()) == 3


def test_delete_nodes_by_id_and_by_filter(fruit: RagStoreVectorStore) -> None:
    fruit.delete_nodes(["apple", "missing"])
    assert "apple" not in ids(fruit.get_nodes())
    fruit.delete_nodes(filters=eq("kind", "vegetable"))
    assert ids(fruit.get_nodes()) == ["banana", "cherry"]
    fruit.delete_nodes(["banana", "cherry"], filters=eq("lang", "de"))  # both: the ids that match
    assert ids(fruit.get_nodes()) == ["banana"]
    with pytest.raises(ValueError, match="clear"):
        fruit.delete_nodes()


def test_get_nodes_by_id_and_filter_with_embeddings(fruit: RagStoreVectorStore) -> None:
    got = fruit.get_nodes(["cherry", "kale", "missing"])
    assert ids(got) == ["cherry", "kale"]
    assert next(n for n in got if n.node_id == "cherry").embedding == pytest.approx(vector(2))
    assert ids(fruit.get_nodes(filters=eq("lang", "en"))) == ["apple", "banana", "carrot"]
    assert ids(fruit.get_nodes(["apple", "cherry"], filters=eq("lang", "en"))) == ["apple"]
    assert fruit.get_nodes([]) == []


def test_clear_empties_the_store_and_it_takes_nodes_again(fruit: RagStoreVectorStore) -> None:
    fruit.clear()
    assert fruit.get_nodes() == [] and fruit.query(dense(0)).nodes == []
    fruit.add(FRUIT[:1])
    assert ids(fruit.get_nodes()) == ["apple"]


# -- metadata and text round-trip -----------------------------------------------------------------------------
def test_metadata_text_and_relationships_round_trip(store: RagStoreVectorStore) -> None:
    meta = {"n": 3, "f": 2.5, "s": "x", "b": True, "none": None, "list": [1, "a"], "empty": [], "obj": {"k": 1}}
    text = "  Leading and trailing space,\r\nWindows line end, e\u0301 decomposed.  "
    original = node("exact", text, 0, doc="parent-1", **meta)
    original.excluded_llm_metadata_keys = ["n"]
    store.add([original])
    for got in (store.get_nodes(["exact"])[0], (store.query(dense(0, k=1)).nodes or [])[0]):
        assert got.get_content() == text
        assert got.metadata == meta and type(got.metadata["n"]) is int
        assert got.ref_doc_id == "parent-1" and got.excluded_llm_metadata_keys == ["n"]
        assert isinstance(got, TextNode)


def test_nodes_without_a_source_document(store: RagStoreVectorStore) -> None:
    store.add([TextNode(id_="orphan", text="No parent.", embedding=vector(0))])
    (got,) = store.get_nodes()
    assert got.ref_doc_id is None and got.get_content() == "No parent."


def test_documents_ragstore_stored_itself_read_as_text_nodes(store: RagStoreVectorStore) -> None:
    store.add(FRUIT[:1])
    chunks = [{"text": "First part.", "vector": vector(6)}, {"text": "Second part.", "vector": vector(7)}]
    store.client.documents.add(
        store.collection_name, [DocumentInput(source_uri="file.txt", chunks=chunks, metadata={"n": 1})]
    )
    got = {n.node_id: n for n in store.get_nodes(filters=eq("n", 1))}
    assert sorted(got) == ["file.txt", "file.txt#1"]
    assert got["file.txt#1"].get_content() == "Second part." and got["file.txt#1"].ref_doc_id == "file.txt"
    assert store.query(dense(7, k=1)).ids == ["file.txt#1"]


# -- filters: every operator ragstore can express ------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "value", "op", "expected"),
    [
        ("kind", "vegetable", FilterOperator.EQ, ["carrot", "kale"]),
        ("price", 3, FilterOperator.EQ, ["apple"]),
        ("lang", "en", FilterOperator.NE, ["cherry", "kale"]),  # a node without the key is "not equal"
        ("price", 3, FilterOperator.GT, ["cherry", "kale"]),
        ("price", 3, FilterOperator.GTE, ["apple", "cherry", "kale"]),
        ("price", 2, FilterOperator.LT, ["banana"]),
        ("price", 2, FilterOperator.LTE, ["banana", "carrot"]),
        ("rating", 4.0, FilterOperator.GT, ["apple"]),
        ("lang", ["de", "fr"], FilterOperator.IN, ["cherry"]),
        ("price", [1, 2], FilterOperator.IN, ["banana", "carrot"]),
        ("lang", ["en"], FilterOperator.NIN, ["cherry", "kale"]),
        ("tag", None, FilterOperator.IS_EMPTY, ["apple", "banana", "carrot", "cherry", "kale"]),
        ("lang", None, FilterOperator.IS_EMPTY, ["kale"]),
        ("kind", None, FilterOperator.IS_EMPTY, []),
        ("document_id", "doc-b", FilterOperator.EQ, ["carrot", "cherry"]),  # LlamaIndex's copy of ref_doc_id
        ("doc_id", "doc-c", FilterOperator.EQ, ["kale"]),
    ],
)
def test_filter_operator(
    fruit: RagStoreVectorStore, key: str, value: Any, op: FilterOperator, expected: list[str]
) -> None:
    filters = eq(key, value, op)
    assert ids(fruit.query(dense(0, filters=filters)).nodes or []) == expected
    assert ids(fruit.get_nodes(filters=filters)) == expected


def test_filters_combine_with_and_or_not_and_nest(fruit: RagStoreVectorStore) -> None:
    red = MetadataFilter(key="kind", value="fruit")
    cheap = MetadataFilter(key="price", value=3, operator=FilterOperator.LTE)
    german = MetadataFilter(key="lang", value="de")
    both = MetadataFilters(filters=[red, cheap])
    assert ids(fruit.query(dense(0, filters=both)).nodes or []) == ["apple", "banana"]
    either = MetadataFilters(filters=[german, cheap], condition=FilterCondition.OR)
    assert ids(fruit.query(dense(0, filters=either)).nodes or []) == ["apple", "banana", "carrot", "cherry"]
    neither = MetadataFilters(filters=[german, cheap], condition=FilterCondition.NOT)
    assert ids(fruit.query(dense(0, filters=neither)).nodes or []) == ["kale"]
    nested = MetadataFilters(
        filters=[
            MetadataFilter(key="kind", value="vegetable"),
            MetadataFilters(filters=[german, cheap], condition="or"),
        ]
    )
    assert ids(fruit.query(dense(0, filters=nested)).nodes or []) == ["carrot"]


@pytest.mark.parametrize(
    "op",
    [
        FilterOperator.TEXT_MATCH,
        FilterOperator.TEXT_MATCH_INSENSITIVE,
        FilterOperator.CONTAINS,
        FilterOperator.ANY,
        FilterOperator.ALL,
    ],
)
def test_unsupported_operators_are_refused_by_name(fruit: RagStoreVectorStore, op: FilterOperator) -> None:
    value: Any = ["red"] if op in (FilterOperator.ANY, FilterOperator.ALL) else "red"
    with pytest.raises(UnsupportedFilter, match=f"operator {op.name} "):
        fruit.query(dense(0, filters=eq("kind", value, op)))
    with pytest.raises(ValueError, match=op.name):
        fruit.get_nodes(filters=eq("kind", value, op))


def test_filters_on_ragstore_document_fields_are_refused(fruit: RagStoreVectorStore) -> None:
    with pytest.raises(UnsupportedFilter, match="'title'"):
        fruit.query(dense(0, filters=eq("title", "x")))
    with pytest.raises(UnsupportedFilter, match="needs a value"):
        fruit.query(dense(0, filters=eq("kind", None)))


# -- query modes and id restrictions --------------------------------------------------------------------------
def test_doc_ids_and_node_ids_restrict_the_query(fruit: RagStoreVectorStore) -> None:
    assert ids(fruit.query(dense(0, doc_ids=["doc-b", "doc-c"])).nodes or []) == ["carrot", "cherry", "kale"]
    assert ids(fruit.query(dense(0, node_ids=["kale", "apple"])).nodes or []) == ["apple", "kale"]
    both = dense(0, doc_ids=["doc-a"], node_ids=["banana", "kale"], filters=eq("lang", "en"))
    assert ids(fruit.query(both).nodes or []) == ["banana"]
    # An empty list restricts nothing (VectorStoreIndex's retriever passes node_ids=[]).
    assert len(fruit.query(dense(0, doc_ids=[], node_ids=[])).nodes or []) == len(FRUIT)


def test_similarity_top_k_and_the_order_of_the_default_mode(fruit: RagStoreVectorStore) -> None:
    query = VectorStoreQuery(query_embedding=vector(3, lean=4), similarity_top_k=2)
    result = fruit.query(query)
    assert result.ids == ["carrot", "kale"]
    assert result.similarities is not None and result.similarities[0] > result.similarities[1]


def test_text_search_is_lexical(fruit: RagStoreVectorStore) -> None:
    query = VectorStoreQuery(query_str="red fruit", similarity_top_k=5, mode=VectorStoreQueryMode.TEXT_SEARCH)
    assert set((fruit.query(query).ids or [])[:2]) == {"apple", "cherry"}
    with pytest.raises(ValueError, match="query_str"):
        fruit.query(VectorStoreQuery(query_embedding=vector(0), mode=VectorStoreQueryMode.TEXT_SEARCH))


def test_hybrid_weighs_the_sides_by_alpha(fruit: RagStoreVectorStore) -> None:
    """The text says "yellow" (banana), the embedding points at kale and away from banana: alpha 1 is the
    dense ranking alone, alpha 0 the lexical one, and between them reciprocal rank fusion puts both on top."""

    def hybrid(alpha: float | None) -> list[str]:
        embedding = vector(4)
        embedding[1] = -0.5
        query = VectorStoreQuery(
            query_str="yellow",
            query_embedding=embedding,
            similarity_top_k=5,
            mode=VectorStoreQueryMode.HYBRID,
            alpha=alpha,
        )
        return fruit.query(query).ids or []

    assert hybrid(1.0)[0] == "kale" and hybrid(1.0)[-1] == "banana"
    assert hybrid(0.0) == ["banana"]
    assert set(hybrid(0.5)[:2]) == {"kale", "banana"}
    assert set(hybrid(None)[:2]) == {"kale", "banana"}  # the server's weights


@pytest.mark.parametrize("mode", [VectorStoreQueryMode.MMR, VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.SVM])
def test_other_modes_are_refused_by_name(fruit: RagStoreVectorStore, mode: VectorStoreQueryMode) -> None:
    with pytest.raises(ValueError, match=mode.name):
        fruit.query(dense(0, mode=mode))


def test_async_variants(store: RagStoreVectorStore) -> None:
    async def run() -> None:
        assert await store.async_add(FRUIT) == [n.node_id for n in FRUIT]
        assert (await store.aquery(dense(1, k=1))).ids == ["banana"]
        assert ids(await store.aget_nodes(filters=eq("kind", "vegetable"))) == ["carrot", "kale"]
        await store.adelete("doc-c")
        await store.adelete_nodes(["banana"])
        assert ids(await store.aget_nodes()) == ["apple", "carrot", "cherry"]
        await store.aclear()
        assert await store.aget_nodes() == []

    asyncio.run(run())


# -- construction ---------------------------------------------------------------------------------------------
def test_exactly_one_backend(tmp_path: Path, ragstore: RagStore) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        RagStoreVectorStore("kb")
    with pytest.raises(ValueError, match="exactly one"):
        RagStoreVectorStore("kb", store=ragstore, data_dir=tmp_path)


def test_a_dimension_that_differs_from_the_collection_is_a_conflict(fruit: RagStoreVectorStore) -> None:
    from ragstore.errors import Conflict

    other = RagStoreVectorStore(fruit.collection_name, store=fruit.client)  # type: ignore[arg-type]
    with pytest.raises(Conflict, match="dimension"):
        other.add([TextNode(id_="wide", text="Too wide.", embedding=[1.0] * (DIM + 1))])


def test_ragstore_imports_no_llama_index_and_a_missing_extra_is_named() -> None:
    import subprocess
    import sys

    script = (
        "import sys\n"
        "import ragstore, ragstore.service, ragstore.integrations\n"
        "assert not [m for m in sys.modules if m.startswith('llama_index')], 'ragstore imported llama_index'\n"
        "sys.modules['llama_index'] = None\n"
        "try:\n"
        "    import ragstore.integrations.llama_index\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert "MissingExtra" in done.stdout and "pip install 'ragstore[llamaindex]'" in done.stdout
