"""One active document per source: concurrent replacements and deletes of one source never leave two.

20 clients (threads of one process, each through the facade, as request threads of a server are) ingest and
delete the same `source_uri` for a while; afterwards the collection holds exactly one active document of that
source or none, and the consistency check is clean. The migration that adds the constraint resolves
duplicates a database already holds (the newest stays) and the checker names any that a database without the
constraint holds.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.db.models import Document, DocumentStatus
from ragstore.errors import Conflict, RagstoreError
from ragstore.migrations import Migrator

from conftest import CountingEmbedder

SOURCE = "shared://one-source"


def _hammer(store: RagStore, seconds: float, clients: int = 20) -> Counter[str]:
    """`clients` threads ingesting a new version of SOURCE, or deleting its active document, until time."""
    store.collections.create("kb")
    store.warm_up()  # the analyzer's model loads before the clock starts, not inside the first ingest
    # Each client brings its own vectors: the race is in the write path, not in the embedding model.
    dim = store.collections.embedder.dimension
    deadline = time.monotonic() + seconds
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    unexpected: list[BaseException] = []

    def client(n: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            i += 1
            try:
                if (n + i) % 3 == 0:
                    for doc in store.documents.list("kb", limit=50):
                        if doc.source_uri == SOURCE:
                            store.documents.delete("kb", doc.id)
                    kind = "delete"
                else:
                    chunk = {
                        "text": f"Version {n}.{i} of the shared page.",
                        "vector": [1.0 + n] + [float(i)] * (dim - 1),
                    }
                    out = store.documents.add("kb", [{"chunks": [chunk], "source_uri": SOURCE}], wait=n % 2 == 0)
                    kind = out[0].status
            except Conflict:
                kind = "conflict"  # a lost race, reported as such: nothing was stored
            except RagstoreError as exc:
                if exc.code != "not_found":  # the document another client deleted first
                    unexpected.append(exc)
                kind = "gone"
            except BaseException as exc:
                unexpected.append(exc)
                return
            with lock:
                outcomes[kind] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not unexpected, unexpected[:3]
    return outcomes


def _assert_one_or_none(store: RagStore) -> None:
    store.index.wait(timeout_s=60)
    with store.documents.catalog.db.read() as s:
        active = s.scalars(
            select(Document.id).where(Document.source_uri == SOURCE, Document.status == DocumentStatus.ACTIVE)
        ).all()
    assert len(active) <= 1, f"{len(active)} active documents of one source"
    report = store.consistency.check("kb")
    assert report is not None and report.problems == 0, report


def test_twenty_clients_on_one_source_leave_one_active_document(store: RagStore) -> None:
    outcomes = _hammer(store, seconds=4.0)
    assert outcomes["replaced"] + outcomes["added"] >= 10 and outcomes["delete"] >= 1, outcomes
    print(dict(outcomes))
    _assert_one_or_none(store)


@pytest.mark.slow
def test_twenty_clients_for_thirty_seconds(store: RagStore) -> None:
    """The issue's figure: 20 clients for 30 s (left 20 active documents before the constraint)."""
    outcomes = _hammer(store, seconds=30.0)
    print(dict(outcomes))
    assert outcomes["replaced"] + outcomes["added"] > 100, outcomes
    _assert_one_or_none(store)


def test_the_database_refuses_a_second_active_document_of_a_source(store: RagStore) -> None:
    store.collections.create("kb")
    first = store.documents.add_text("kb", "The first version.", source_uri=SOURCE)
    second = store.documents.add_text("kb", "The second version.", source_uri=SOURCE)
    assert (first.status, second.status) == ("added", "replaced")
    with pytest.raises(IntegrityError):  # whatever writes, not only ingest
        _insert_copy(store.documents.catalog.db.engine, int(second.document_id or 0), 1000)
    assert [d.id for d in store.documents.list("kb")] == [second.document_id]


def test_one_source_twice_in_one_request_is_refused_naming_it(store: RagStore) -> None:
    store.collections.create("kb")
    with pytest.raises(RagstoreError, match="source_uri given twice") as caught:
        store.documents.add("kb", [{"text": "one", "source_uri": "a"}, {"text": "two", "source_uri": "a"}])
    assert caught.value.http_status == 422
    assert store.documents.list("kb") == []


def _engine(settings: Settings) -> Engine:
    return Database(settings).engine


def _insert_copy(engine: Engine, document_id: int, new_id: int) -> None:
    """A second active document of `document_id`'s source, written as if by an ingest before 0009 (no chunks,
    a later `created_at`): what concurrent ingests used to leave."""
    later = datetime.now(UTC) + timedelta(hours=1)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO documents (id, collection_id, source_uri, title, mime_type, size_bytes, metadata, "
                "content_hash, status, chunk_count, created_at, updated_at) "
                "SELECT :new_id, collection_id, source_uri, title, mime_type, size_bytes, metadata, :hash, "
                "'active', 0, :later, :later FROM documents WHERE id = :id"
            ),
            {
                "new_id": new_id,
                "id": document_id,
                "hash": f"{new_id:064d}",
                "later": later,
            },
        )


def test_migration_keeps_the_newest_of_existing_duplicates(settings: Settings, embedder: CountingEmbedder) -> None:
    """A database written before 0009 may hold duplicates: the upgrade keeps the newest, retires the others
    through the outbox (so their vectors leave the index), and then the index holds."""
    with RagStore.open(settings, embedder=embedder) as store:
        store.collections.create("kb")
        old = [store.documents.add_text("kb", f"Version {i}.", source_uri=f"src-{i}").document_id for i in range(2)]
        store.index.wait(timeout_s=60)
    assert all(i is not None for i in old)
    engine = _engine(settings)
    migrator = Migrator(engine)
    migrator.downgrade("0008")
    copies = [1000 + i for i in range(2)]
    for doc_id, copy in zip(old, copies, strict=True):
        _insert_copy(engine, int(doc_id or 0), copy)
    migrator.upgrade()
    with engine.connect() as conn:
        active = conn.execute(select(Document.id).where(Document.status == "active").order_by(Document.id)).scalars()
        assert list(active) == copies
        assert conn.execute(text("SELECT count(*) FROM sync_operations WHERE kind = 'delete'")).scalar_one() >= 1
    engine.dispose()
    with RagStore.open(settings, embedder=embedder) as store:
        store.index.wait(timeout_s=60)
        report = store.consistency.check("kb")
        assert report is not None and report.problems == 0, report
        assert sorted(d.id for d in store.documents.list("kb")) == copies


def test_the_checker_names_duplicate_sources(settings: Settings, embedder: CountingEmbedder) -> None:
    with RagStore.open(settings, embedder=embedder) as store:
        store.collections.create("kb")
        first = store.documents.add_text("kb", "Version one.", source_uri=SOURCE).document_id
        store.index.wait(timeout_s=60)
    engine = _engine(settings)
    with engine.begin() as conn:  # a database written without the constraint
        conn.execute(text("DROP INDEX uq_documents_active_source"))
    _insert_copy(engine, int(first or 0), 1000)
    engine.dispose()
    with RagStore.open(settings, embedder=embedder) as store:
        report = store.consistency.check("kb")
    assert report is not None
    assert (report.counts or {}).get("duplicate_source") == 2, report.counts
    found = [f for f in (report.findings or []) if f.kind == "duplicate_source"]
    assert found and sorted(found[0].ids) == sorted([int(first or 0), 1000])
