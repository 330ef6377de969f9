"""Which chunks a search may show (db/visibility.py), across every state a row can be in.

Row states are set directly in SQL, so each combination is reached without racing the outbox: chunk status
(pending, indexed, deleting) x document status (active, deleting, and gone: the row deleted while its
vector stays in the index) x mode (dense, lexical, hybrid) x with and without a metadata filter, on SQLite
and PostgreSQL (the `store` fixture). Exactly the indexed chunks of active documents may come back.
"""

from __future__ import annotations

import itertools
import sqlite3

import pytest
from sqlalchemy import delete, select, update

from ragstore import RagStore
from ragstore.db.models import (
    ChunkStatus,
    Collection,
    CollectionStatus,
    Document,
    DocumentChunk,
    DocumentStatus,
)
from ragstore.db.visibility import VISIBLE_SQL, chunk_visible, is_visible, visible_chunk_ids, visible_sql
from ragstore.errors import NotFound

GONE = "gone"  # the document row (and, by cascade, its chunks) deleted in SQL; the vector left behind
DOCUMENT_STATES = [DocumentStatus.ACTIVE, DocumentStatus.DELETING, GONE]
MODES = ["dense", "lexical", "hybrid"]
TEAM_A = {"team": "a"}


def _title(chunk: str, document: str, team: str) -> str:
    return f"{document}-{chunk}-{team}"


def _expected(filtered: bool) -> set[str]:
    return {
        _title(c, d, team)
        for c, d, team in itertools.product(ChunkStatus, DOCUMENT_STATES, "ab")
        if c == ChunkStatus.INDEXED and d == DocumentStatus.ACTIVE and (team == "a" or not filtered)
    }


@pytest.fixture
def matrix(store: RagStore) -> RagStore:
    """One single-chunk document per (chunk status, document status, team), every one first indexed."""
    store.collections.create("kb")
    combos = list(itertools.product(ChunkStatus, DOCUMENT_STATES, "ab"))
    store.documents.add(
        "kb",
        [
            {"title": _title(c, d, team), "text": f"환불 안내 {i}번 문서", "metadata": {"team": team}}
            for i, (c, d, team) in enumerate(combos)
        ],
    )
    with store.db.engine.begin() as conn:
        assert set(conn.scalars(select(DocumentChunk.status))) == {ChunkStatus.INDEXED}
        ids = {title: doc_id for title, doc_id in conn.execute(select(Document.title, Document.id))}
        for c, d, team in combos:
            doc_id = ids[_title(c, d, team)]
            if d == GONE:
                conn.execute(delete(Document).where(Document.id == doc_id))
                continue
            conn.execute(update(Document).where(Document.id == doc_id).values(status=d))
            conn.execute(update(DocumentChunk).where(DocumentChunk.document_id == doc_id).values(status=c))
        # A write as far as the result cache knows: nothing cached before the changes may answer.
        conn.execute(update(Collection).values(write_version=Collection.write_version + 1))
    store.components.versions.forget()
    return store


@pytest.mark.parametrize("filtered", [False, True], ids=["all", "filtered"])
@pytest.mark.parametrize("mode", MODES)
def test_search_shows_exactly_the_visible_chunks(matrix: RagStore, mode: str, filtered: bool) -> None:
    found = matrix.search("kb", "환불", k=50, mode=mode, filter=TEAM_A if filtered else None)
    assert found.mode == mode
    assert {h.title for h in found.hits} == _expected(filtered)


def test_a_collection_being_dropped_is_not_searched(matrix: RagStore) -> None:
    """The collection's own status is checked where every search starts (Catalog.resolve)."""
    with matrix.db.engine.begin() as conn:
        conn.execute(update(Collection).values(status=CollectionStatus.DELETING))
    matrix.components.catalog.forget("kb")
    for mode in MODES:
        with pytest.raises(NotFound):
            matrix.search("kb", "환불", k=5, mode=mode)


def test_sql_forms_agree_with_the_python_rule(matrix: RagStore) -> None:
    """`chunk_visible`, `visible_chunk_ids` and `is_visible` pick the same rows."""
    with matrix.db.engine.connect() as conn:
        rows = conn.execute(
            select(DocumentChunk.id, DocumentChunk.status, Document.status, chunk_visible()).join(
                Document, Document.id == DocumentChunk.document_id
            )
        ).all()
        (collection_id,) = conn.scalars(select(Collection.id)).all()
        listed = set(conn.scalars(visible_chunk_ids(collection_id)))
        filtered = set(conn.scalars(visible_chunk_ids(collection_id, Document.metadata_["team"].as_string() == "a")))
    assert len(rows) == len(ChunkStatus) * 2 * 2  # the gone documents' chunks left with them
    visible = {r[0] for r in rows if is_visible(r[1], r[2])}
    assert visible == {r[0] for r in rows if r[3]} == listed
    assert len(visible) == 2 and len(filtered) == 1 and filtered < visible


def test_raw_fragment_is_compiled_from_the_expression() -> None:
    """The raw SQL the SQLite hot paths splice in is the same condition, over their aliases."""
    assert VISIBLE_SQL == visible_sql("c", "d") == "c.status = 'indexed' AND d.status = 'active'"
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE document_chunks (id INTEGER, document_id INTEGER, status TEXT)")
    conn.execute("CREATE TABLE documents (id INTEGER, status TEXT)")
    combos = list(itertools.product(ChunkStatus, DocumentStatus))
    for i, (c, d) in enumerate(combos):
        conn.execute("INSERT INTO documents VALUES (?, ?)", (i, str(d)))
        conn.execute("INSERT INTO document_chunks VALUES (?, ?, ?)", (i, i, str(c)))
    shown = {
        int(r[0])
        for r in conn.execute(
            f"SELECT c.id FROM document_chunks AS c JOIN documents AS d ON d.id = c.document_id WHERE {VISIBLE_SQL}"
        )
    }
    assert shown == {i for i, (c, d) in enumerate(combos) if is_visible(c, d)}
