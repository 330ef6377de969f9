"""Schema migrations: up, down, checksums of applied revisions."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, select, text

from ragstore import MigrationError, RagStore
from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.db.models import Base, MigrationChecksum
from ragstore.migrations import MIGRATIONS_DIR, Migrator, include_object_for

TABLES = {
    "collections",
    "documents",
    "document_chunks",
    "embeddings",
    "embedding_usage",
    "sync_operations",
    "job_queue",
    "ragstore_migration_checksums",
}


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """An empty database of the backend under test (SQLite file or PostgreSQL schema)."""
    created = Database(settings).engine
    yield created
    created.dispose()


def test_upgrade_creates_the_schema_the_models_describe(engine: Engine) -> None:
    migrator = Migrator(engine)
    assert migrator.current() is None
    assert migrator.upgrade() == migrator.head()
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as conn:
        opts = {"compare_type": True, "include_object": include_object_for(conn.dialect.name)}
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
        assert diff == []
        recorded = {r for r in conn.execute(select(MigrationChecksum.revision)).scalars()}
    assert recorded == {r.revision for r in migrator.status().revisions}


def test_downgrade_to_base_and_up_again(engine: Engine) -> None:
    migrator = Migrator(engine)
    migrator.upgrade()
    assert migrator.downgrade("base") is None
    assert not TABLES & set(inspect(engine).get_table_names())
    migrator.upgrade()
    assert migrator.status().up_to_date


def test_an_edited_applied_revision_is_refused_naming_the_file(tmp_path: Path) -> None:
    scripts = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    Migrator(engine, scripts).upgrade()
    revision_file = next((scripts / "versions").glob("0001_*.py"))
    revision_file.write_text(revision_file.read_text() + "\n# an innocent-looking edit\n")
    with pytest.raises(MigrationError) as excinfo:
        Migrator(engine, scripts).verify_checksums()
    assert revision_file.name in str(excinfo.value)
    assert "edited after it was applied" in str(excinfo.value)


def test_store_refuses_to_open_on_a_tampered_checksum(settings: Settings, engine: Engine) -> None:
    RagStore.open(settings).close()
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE ragstore_migration_checksums SET sha256 = 'deadbeef' || substr(sha256, 9) "
                "WHERE revision = '0001'"
            )
        )
    with pytest.raises(MigrationError, match=r"0001_initial_schema\.py"):
        RagStore.open(settings)


def test_store_refuses_an_old_schema_without_auto_migrate(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(auto_migrate=False)
    with pytest.raises(MigrationError, match="ragstore init"):
        RagStore.open(settings)


def test_sqlite_runs_in_wal_with_foreign_keys(store: RagStore) -> None:
    if not store.db.is_sqlite:
        pytest.skip(
            "SQLite pragmas; the PostgreSQL twin: test_postgres.py::test_pool_and_statement_timeout_come_from_settings"
        )
    with store.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == store.settings.sqlite_busy_timeout_ms


def test_processes_migrating_at_once_take_turns(settings: Settings) -> None:
    """`serve --workers N` on an empty database: every process upgrades at start, one after the other."""
    import threading

    results: list[str | None] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def migrate() -> None:
        db = Database(settings)
        try:
            start.wait()
            results.append(Migrator(db.engine).upgrade())
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    head = Migrator(Database(settings).engine).head()
    assert results == [head, head, head]


def test_finished_checks_move_to_the_ledger_state_and_back(engine: Engine) -> None:
    """0008: consistency reports written `done` before the run ledger read as `complete`, and back."""
    migrator = Migrator(engine)
    migrator.upgrade("0007")
    insert = (
        "INSERT INTO consistency_reports (trigger, state, backend, repair, counts, details, problems) "
        "VALUES ('manual', :state, 'embedded', false, '{}', '{}', 0)"
    )
    with engine.begin() as conn:
        for state in ("done", "failed", "running"):
            conn.execute(text(insert), {"state": state})
    migrator.upgrade()
    states = "SELECT state FROM consistency_reports ORDER BY id"
    with engine.connect() as conn:
        assert list(conn.execute(text(states)).scalars()) == ["complete", "failed", "running"]
    migrator.downgrade("0007")
    with engine.connect() as conn:
        assert list(conn.execute(text(states)).scalars()) == ["done", "failed", "running"]


def test_0011_rebuilds_documents_keeping_every_row_and_never_reusing_an_id(
    make_settings: Callable[..., Settings],
) -> None:
    """On SQLite 0011 rebuilds `documents` (copy, drop, rename): with foreign keys on, the drop would have
    cascaded into every chunk; a rebuilt AUTOINCREMENT table would restart after its highest surviving id."""
    settings = make_settings()
    with RagStore.open(settings) as store:
        store.collections.create("kb")
        ids = [store.documents.add_text("kb", f"text number {i}", source_uri=f"s{i}").document_id for i in range(3)]
        assert ids[2] is not None
        store.documents.delete("kb", ids[2])
    engine = Database(settings).engine
    try:
        migrator = Migrator(engine)
        migrator.downgrade("0010")
        migrator.upgrade()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM document_chunks")).scalar_one() == 2
            names = {i["name"] for i in inspect(conn).get_indexes("documents")}
            assert {"uq_documents_active_source", "ix_documents_collection_content_hash"} <= names
    finally:
        engine.dispose()
    with RagStore.open(settings) as store:
        again = store.documents.add_text("kb", "a new text", source_uri="s9").document_id
        assert again is not None and again > ids[2]
        assert store.collections.get("kb").document_count == 2 + 1


def test_0011_downgrade_refuses_while_one_content_is_stored_under_two_sources(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    with RagStore.open(settings) as store:
        store.collections.create("kb")
        store.documents.add_text("kb", "the same words", source_uri="a")
    engine = Database(settings).engine
    try:
        with engine.begin() as conn:  # what --keep-duplicates stores: the same content under a second source
            conn.execute(
                text(
                    "INSERT INTO documents (collection_id, source_uri, title, mime_type, size_bytes, metadata, "
                    "content_hash, status, chunk_count, created_at, updated_at) "
                    "SELECT collection_id, 'b', title, mime_type, size_bytes, metadata, content_hash, status, "
                    "chunk_count, created_at, updated_at FROM documents WHERE source_uri = 'a'"
                )
            )
        with pytest.raises(Exception, match="stored under more than one source"):
            Migrator(engine).downgrade("0010")
        assert Migrator(engine).current() == Migrator(engine).head()
    finally:
        engine.dispose()


def test_0015_fills_the_facets_of_documents_stored_before_it(make_settings: Callable[..., Settings]) -> None:
    """Documents stored before the facet table existed are found by a filter after the upgrade."""
    settings = make_settings()
    with RagStore.open(settings) as store:
        store.collections.create("kb")
        store.documents.add_text("kb", "an old text", source_uri="old", metadata={"lang": "ko", "n": 2, "x": [1]})
    engine = Database(settings).engine
    try:
        migrator = Migrator(engine)
        migrator.downgrade("0014")
        migrator.upgrade()
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT key, kind FROM document_facets ORDER BY key")).all()
        assert [tuple(r) for r in rows] == [("lang", "s"), ("n", "n"), ("x", "x")]
    finally:
        engine.dispose()
    with RagStore.open(settings) as store:
        assert [d.source_uri for d in store.documents.find("kb", filter={"lang": "ko", "n": {"$gte": 2}})] == ["old"]
