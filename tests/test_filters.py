"""Search filters: every operator and nested combinations, in each search mode, on SQLite and PostgreSQL.

Each filter's hits are checked against a Python evaluation of the same filter over the documents (the
semantics README.md states: AND of keys, type-strict comparisons, a missing key matches `$ne`/`$nin` and
`$not`, a JSON null is present for `$exists`), so the SQL of both dialects must agree with it and with each
other. Bad filters are 422s through the API (exit 2 from the CLI) naming the bad part.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ragstore import RagStore
from ragstore.api.app import create_app
from ragstore.cli import app as cli_app
from ragstore.db.filter_spec import MAX_CLAUSES, MAX_DEPTH, MAX_VALUES
from ragstore.errors import InvalidInput

MODES = ("dense", "lexical", "hybrid")
LONG = "x" * 70
# Every text holds "notice", so the lexical side proposes every chunk and the result set is the filter's.
METADATA: list[dict[str, Any]] = [
    {"lang": "ko", "n": 1, "score": 0.5, "tags": ["a", "b"], "flag": True, "published": "2024-01-15"},
    {"lang": "en", "n": 2, "score": 2.5, "flag": False, "published": "2024-03-01"},
    {"lang": "ko", "n": 3, "flag": None},
    {"lang": None, "n": "3"},
    {"lang": "ja", "n": True},
    {"lang": "en", "n": 5.0, "nested": {"a": 1}},
    {},
    {"lang": "ko", "n": 10, "a.b": "dot", "published": "2024-12-31"},
    {"lang": "KO", "n": -1, "score": 1},
    {"lang": "한국어", "n": 0, "flag": True},
    {"lang": "en", "n": 2, "tags": "a"},
    {"lang": ["ko"], "n": [1]},
    # The facet table keeps 64 characters of a string and a double of a number: these share a facet value
    # with each other, and only the exact condition after it tells them apart.
    {"lang": LONG + "a", "big": 2**60 + 1},
    {"lang": LONG + "b", "big": 2**60},
]
WORDS = ["library", "garden", "refund", "delivery", "leave", "insurance", "returns", "exchange", "payment",
         "account", "subway", "kimchi", "photo", "weather"]  # fmt: skip
MISSING = object()
FIELDS = ("document_id", "source_uri", "title", "mime_type")


# -- the reference: the documented semantics, in Python ------------------------------------------------


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string" if isinstance(value, str) else None  # a null, list or object equals nothing


def _equal(stored: Any, wanted: Any) -> bool:
    return stored is not MISSING and _kind(stored) is not None and _kind(stored) == _kind(wanted) and stored == wanted


def _ordered(stored: Any, op: str, bound: Any) -> bool:
    if stored is MISSING or _kind(stored) is None or _kind(stored) != _kind(bound):
        return False
    return {"$gt": stored > bound, "$gte": stored >= bound, "$lt": stored < bound, "$lte": stored <= bound}[op]


def _field(doc: dict[str, Any], key: str, spec: Any) -> bool:
    stored = doc[key] if key in FIELDS else doc["metadata"].get(key, MISSING)
    ops = spec if isinstance(spec, dict) else {"$in": spec} if isinstance(spec, list) else {"$eq": spec}
    for op, arg in ops.items():
        if op == "$eq":
            ok = _equal(stored, arg)
        elif op == "$ne":
            ok = not _equal(stored, arg)
        elif op == "$in":
            ok = any(_equal(stored, a) for a in arg)
        elif op == "$nin":
            ok = not any(_equal(stored, a) for a in arg)
        elif op == "$exists":
            ok = (stored is not MISSING) == arg
        else:
            ok = _ordered(stored, op, arg)
        if not ok:
            return False
    return True


def matches(doc: dict[str, Any], spec: dict[str, Any]) -> bool:
    for key, value in spec.items():
        if key == "$and":
            ok = all(matches(doc, sub) for sub in value)
        elif key == "$or":
            ok = any(matches(doc, sub) for sub in value)
        elif key == "$not":
            ok = not matches(doc, value)
        else:
            ok = _field(doc, key, value)
        if not ok:
            return False
    return True


def _nested_not(depth: int, inner: dict[str, Any]) -> dict[str, Any]:
    spec = inner
    for _ in range(depth - 1):
        spec = {"$not": spec}
    return spec


def filters(docs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    first, second = docs["doc0"], docs["doc1"]
    return [
        {"lang": "ko"},
        {"lang": {"$eq": "ko"}},
        {"lang": {"$ne": "ko"}},
        {"lang": {"$in": ["ko", "en"]}},
        {"lang": ["ko", "KO"]},
        {"lang": {"$nin": ["ko", "en"]}},
        {"lang": {"$exists": True}},
        {"lang": {"$exists": False}},
        {"lang": {"$gt": "en"}},
        {"lang": {"$lt": "ko", "$gte": "KO"}},
        {"flag": {"$exists": True}},
        {"flag": True},
        {"flag": {"$ne": True}},
        {"flag": {"$gt": False}},
        {"flag": {"$lte": False}},
        {"n": 3},
        {"n": "3"},
        {"n": 1},
        {"n": 5},
        {"n": {"$gt": 1}},
        {"n": {"$gt": 1.5}},
        {"n": {"$gte": 2, "$lt": 10}},
        {"n": {"$lte": 0}},
        {"n": {"$ne": 2}},
        {"n": {"$ne": True}},
        {"n": {"$nin": [1, 2, 3]}},
        {"n": {"$in": [1, "3", True]}},
        {"score": 0.5},
        {"score": {"$gte": 1}},
        {"published": {"$gte": "2024-02-01"}},
        {"tags": "a"},
        {"tags": '["a","b"]'},
        {"tags": {"$in": ["a", '["a", "b"]']}},
        {"nested": '{"a":1}'},
        {"n": 0},
        {"n": {"$in": [0, 2]}},
        {"flag": {"$in": [1, 0]}},
        {"tags": {"$exists": True}},
        {"a.b": "dot"},
        {"nested": {"$exists": True}},
        {"nested": {"$ne": 1}},
        {"$and": [{"lang": "ko"}, {"n": {"$gt": 1}}]},
        {"$or": [{"lang": "en"}, {"flag": True}]},
        {"$not": {"lang": "ko"}},
        {"$not": {"n": {"$gt": 2}}},
        {"$not": {"$or": [{"lang": "ko"}, {"n": {"$exists": False}}]}},
        {"$not": {"$and": [{"lang": "en"}, {"n": {"$nin": [5]}}]}},
        {"$or": [{"$and": [{"lang": "ko"}, {"$not": {"flag": True}}]}, {"n": {"$in": [2, 5]}}]},
        {"lang": "ko", "$or": [{"n": 1}, {"n": 10}]},
        {"$or": [{}, {"lang": "nothing"}]},
        {"$and": [{"lang": {"$exists": True}}, {"$not": {"lang": {"$in": ["ko", "en"]}}}]},
        _nested_not(MAX_DEPTH, {"lang": "ko"}),
        _nested_not(MAX_DEPTH - 1, {"n": {"$gte": 3}}),
        {"title": {"$in": ["doc1", "doc2"]}},
        {"title": {"$gte": "doc5"}},
        {"$not": {"title": "doc3"}},
        {"document_id": {"$nin": [first["document_id"], second["document_id"]]}},
        {"document_id": {"$gt": first["document_id"]}, "lang": "en"},
        {"source_uri": {"$ne": first["source_uri"]}, "n": {"$lt": 3}},
        {"mime_type": {"$exists": True}, "flag": {"$exists": False}},
        {"title": {"$exists": False}},
        {"lang": LONG + "a"},
        {"lang": {"$gt": LONG + "a"}},
        {"lang": {"$lt": LONG + "b", "$gt": "y"}},
        {"lang": {"$lte": LONG + "a", "$gte": LONG}},
        {"big": 2**60},
        {"big": {"$gt": 2**60}},
        {"big": {"$in": [2**60 + 1, 3]}},
        {"big": {"$lt": 2**60 + 1}},
    ]


@pytest.fixture
def kb(store: RagStore) -> tuple[RagStore, dict[str, dict[str, Any]]]:
    store.collections.create("kb")
    store.documents.add(
        "kb",
        [
            {"title": f"doc{i}", "text": f"notice {i}: about {WORDS[i]}.", "metadata": meta}
            for i, meta in enumerate(METADATA)
        ],
    )
    docs = {
        d.title: {
            "document_id": d.id,
            "source_uri": d.source_uri,
            "title": d.title,
            "mime_type": d.mime_type,
            "metadata": d.metadata,
        }
        for d in store.documents.list("kb")
    }
    assert len(docs) == len(METADATA)
    return store, docs


def test_every_operator_and_combination_in_every_mode(kb: tuple[RagStore, dict[str, dict[str, Any]]]) -> None:
    store, docs = kb
    seen: set[frozenset[str]] = set()
    for spec in filters(docs):
        expected = {title for title, doc in docs.items() if matches(doc, spec)}
        seen.add(frozenset(expected))
        for mode in MODES:
            found = store.search("kb", "notice", k=50, mode=mode, filter=spec)
            assert not found.cached, (spec, mode)
            assert {h.title for h in found.hits} == expected, (spec, mode)
            again = store.search("kb", "notice", k=50, mode=mode, filter=spec)
            # The result cache keys on the filter: a second search answers from it, with this filter's hits.
            assert again.cached and {h.title for h in again.hits} == expected, (spec, mode)
    assert len(seen) > 30  # the filters tell the documents apart, so a wrong one cannot pass by accident


def test_the_probes_raw_reads_keep_what_each_filter_keeps(
    kb: tuple[RagStore, dict[str, dict[str, Any]]],
) -> None:
    """The filtered search's probe checks its candidates with the condition compiled for the raw driver
    (db/compiled.py: `sqlite_text`, `postgres_text` with psycopg's own JSONB values): every filter keeps the
    documented documents there too."""
    from sqlalchemy import select

    from ragstore.db.filters import compile_filter
    from ragstore.db.models import DocumentChunk
    from ragstore.search.rows import read_rows

    store, docs = kb
    ids = [int(r[0]) for r in store.db.fetch(select(DocumentChunk.id))]
    for spec in filters(docs):
        expected = {title for title, doc in docs.items() if matches(doc, spec)}
        condition = compile_filter(spec, postgres=not store.db.is_sqlite)
        assert condition is not None, spec
        rows = read_rows(store.db, ids, where=condition)
        assert {row.title for row in rows.values()} == expected, spec
        assert {row.title for row in read_rows(store.db, ids, where=condition).values()} == expected, spec  # cached


def test_equal_filters_spelled_differently_find_the_same(kb: tuple[RagStore, dict[str, dict[str, Any]]]) -> None:
    store, _ = kb
    spellings = [
        {"lang": "en", "n": {"$gte": 2}},
        {"n": {"$gte": 2}, "lang": {"$eq": "en"}},
        {"$and": [{"lang": ["en"]}, {"$not": {"n": {"$lt": 2}}}, {"n": {"$exists": True}}]},
    ]
    for mode in MODES:
        found = [{h.title for h in store.search("kb", "notice", k=50, mode=mode, filter=s).hits} for s in spellings]
        assert found[0] == found[1] == found[2] == {"doc1", "doc5", "doc10"}, mode


BAD: list[tuple[dict[str, Any], str]] = [
    ({"$or": {"lang": "ko"}}, "filter.$or: $or needs a non-empty list of filter objects, got an object"),
    ({"$and": []}, "filter.$and: $and needs a non-empty list of filter objects, got an empty list"),
    ({"$or": [{"lang": "ko"}, ["x"]]}, "filter.$or[1]: a filter must be a JSON object, got a list"),
    ({"$or": [{"lang": "ko"}, {"lang": {"$foo": 1}}]}, "filter.$or[1].lang: unknown operator $foo"),
    ({"$not": [{"lang": "ko"}]}, "filter.$not: a filter must be a JSON object, got a list"),
    ({"$nor": [{"lang": "ko"}]}, "filter: unknown operator $nor"),
    ({"lang": {"$exists": "yes"}}, "filter.lang.$exists: $exists takes true or false, got a string"),
    ({"lang": {"$nin": "ko"}}, "filter.lang.$nin: $nin needs a non-empty list of values, got a string"),
    ({"lang": {"$in": []}}, "filter.lang.$in: $in needs a non-empty list"),
    ({"lang": {"$in": ["ko", {"a": 1}]}}, "filter.lang.$in[1]: values must be strings, numbers or booleans"),
    ({"lang": None}, "filter.lang: null is not a filter value"),
    ({"lang": {}}, "filter.lang: give at least one operator"),
    ({"$and": [{"x": 1}, {"lang": {"$regex": "k"}}]}, "filter.$and[1].lang: unknown operator $regex"),
    ({"document_id": "7"}, "filter.document_id: document_id is an integer, got a string"),
    ({"title": {"$gt": 5}}, "filter.title.$gt: title is compared with a string, got a number"),
    ({"created_at": {"$gte": "yesterday"}}, "filter.created_at.$gte: 'yesterday' is not an ISO 8601"),
    ({"bad key!": 1}, "filter: 'bad key!' is not a valid field or metadata key"),
    (_nested_not(MAX_DEPTH + 1, {"lang": "ko"}), f"filters nest at most {MAX_DEPTH} levels deep"),
    ({"$or": [{"n": i} for i in range(MAX_CLAUSES + 5)]}, f"more than {MAX_CLAUSES} conditions"),
    ({"a": {"$in": list(range(600))}, "b": {"$nin": list(range(600))}}, f"more than {MAX_VALUES} values"),
]


def test_bad_filters_are_422s_naming_the_part(store: RagStore) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", "notice: a document to search.", metadata={"lang": "ko"})
    with TestClient(create_app(store=store)) as client:
        for spec, message in BAD:
            answer = client.post("/v1/collections/kb/search", json={"query": "notice", "filter": spec})
            assert answer.status_code == 422, (spec, answer.text)
            error = answer.json()["error"]
            assert message in error["message"], (spec, error)
            with pytest.raises(InvalidInput, match=message.replace("$", r"\$").replace("[", r"\[")):
                store.search("kb", "notice", filter=spec)
        # A filter at the bounds is accepted.
        at_bounds = {"$or": [{"n": i} for i in range(MAX_CLAUSES - 2)], "lang": {"$in": list(range(MAX_VALUES))}}
        accepted = client.post("/v1/collections/kb/search", json={"query": "notice", "filter": at_bounds})
        assert accepted.status_code == 200, accepted.text
        # The bad part is named before the query is embedded or the collection looked up.
        nowhere = client.post("/v1/collections/nope/search", json={"query": "x", "filter": {"$or": 1}})
        assert nowhere.status_code == 422 and "filter.$or" in nowhere.json()["error"]["message"]


def test_the_cli_refuses_a_bad_filter_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None
) -> None:
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(tmp_path / "data"))
    if database_url is not None:
        monkeypatch.setenv("DATABASE_URL", database_url)
    result = CliRunner().invoke(cli_app, ["search", "x", "-c", "kb", "--filter", '{"$or": [{"lang": {"$foo": 1}}]}'])
    assert result.exit_code == 2, result.output
    assert "filter.$or[0].lang: unknown operator $foo" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_equality_under_and_or_keeps_the_jsonb_gin_index(kb: tuple[RagStore, dict[str, dict[str, Any]]]) -> None:
    from sqlalchemy import select

    from ragstore.db.filters import compile_filter
    from ragstore.db.models import Document

    store, _ = kb
    for spec in ({"$or": [{"lang": "ko"}, {"n": {"$in": [2, 5]}}]}, {"$and": [{"lang": "en"}, {"flag": False}]}):
        condition = compile_filter(spec, postgres=True)
        assert condition is not None
        compiled = select(Document.id).where(condition).compile(store.db.engine)
        with store.db.engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a dozen rows: make the planner show its options
            params = {k: json.dumps(v) for k, v in compiled.params.items()}
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}", params))
        assert "ix_documents_metadata_gin" in plan, (spec, plan)


def test_a_filter_looks_up_the_facet_indexes_instead_of_reading_every_document(
    kb: tuple[RagStore, dict[str, dict[str, Any]]],
) -> None:
    """Issue #22: the documents a filter keeps come from the facet indexes; the JSON is read only for those."""
    from psycopg.types.json import Jsonb
    from sqlalchemy import select
    from sqlalchemy.dialects.postgresql import JSONB

    from ragstore.db.filters import compile_filter
    from ragstore.db.models import Document

    store, _ = kb
    collection_id = store.search.catalog.resolve("kb").id
    postgres = not store.db.is_sqlite
    for spec in ({"lang": "ko"}, {"n": {"$gte": 2, "$lt": 10}}, {"$or": [{"lang": "en"}, {"flag": True}]}):
        condition = compile_filter(spec, postgres=postgres, collection_id=collection_id)
        assert condition is not None
        statement = select(Document.id).where(Document.collection_id == collection_id, condition)
        with store.db.engine.begin() as conn:
            if postgres:
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a dozen rows: show the options
            explain = "EXPLAIN" if postgres else "EXPLAIN QUERY PLAN"
            compiled = statement.compile(store.db.engine, compile_kwargs={"render_postcompile": True})
            jsonb = {k for k, b in compiled.binds.items() if isinstance(b.type, JSONB)}
            params: Any = (
                {k: Jsonb(v) if k in jsonb else v for k, v in compiled.params.items()}
                if postgres
                else tuple(compiled.params[k] for k in compiled.positiontup or ())
            )
            plan = "\n".join(str(row) for row in conn.exec_driver_sql(f"{explain} {compiled}", params))
        assert "ix_document_facets_" in plan, (spec, plan)


def test_the_http_fast_path_answers_each_filter_with_its_own_hits(
    kb: tuple[RagStore, dict[str, dict[str, Any]]],
) -> None:
    store, docs = kb
    specs = [{"$or": [{"lang": "en"}, {"flag": True}]}, {"$not": {"$or": [{"lang": "en"}, {"flag": True}]}}]
    with TestClient(create_app(store=store)) as client:
        for spec in specs:
            expected = {title for title, doc in docs.items() if matches(doc, spec)}
            body = {"query": "notice", "k": 50, "filter": spec}
            first, second = (client.post("/v1/collections/kb/search", json=body).json() for _ in range(2))
            assert first["cached"] is False and second["cached"] is True, spec
            assert {h["title"] for h in first["hits"]} == {h["title"] for h in second["hits"]} == expected, spec
