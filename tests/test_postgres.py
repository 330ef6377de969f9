"""What only PostgreSQL has: pool and timeouts, updated_at triggers, the read-only role, reconnection.

These run against the real server of RAGSTORE_TEST_DATABASE_URL (skipped with the reason when it is absent,
failed in CI). The feature suite itself runs on PostgreSQL through the parametrised `database_url` fixture.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ragstore import InvalidInput, RagStore
from ragstore.config import Settings
from ragstore.db.roles import grant_readonly

postgres_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@postgres_only
def test_pool_and_statement_timeout_come_from_settings(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(database_pool_size=3, database_max_overflow=2, database_statement_timeout_ms=250)
    with RagStore.open(settings) as store:
        pool = store.db.engine.pool
        assert pool.size() == 3 and pool._max_overflow == 2  # type: ignore[attr-defined]
        with store.db.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "250ms"
            assert conn.exec_driver_sql("SHOW application_name").scalar() == "ragstore"
            with pytest.raises(DBAPIError, match="statement timeout"):
                conn.exec_driver_sql("SELECT pg_sleep(2)")


@postgres_only
def test_updated_at_trigger_covers_updates_outside_the_orm(store: RagStore) -> None:
    store.collections.create("kb")
    with store.db.engine.begin() as conn:
        before = conn.execute(text("SELECT updated_at FROM collections WHERE name = 'kb'")).scalar_one()
    time.sleep(0.01)
    with store.db.engine.begin() as conn:
        conn.execute(text("UPDATE collections SET description = 'changed by hand' WHERE name = 'kb'"))
        after = conn.execute(text("SELECT updated_at FROM collections WHERE name = 'kb'")).scalar_one()
    assert after > before


@postgres_only
def test_readonly_role_reads_views_and_cannot_write(store: RagStore) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", "제주도 한라산은 성판악 코스가 완만하다.", title="한라산")
    role = f"reports_{uuid.uuid4().hex[:8]}"  # roles are server-wide: unique per test
    try:
        assert grant_readonly(store.db.engine, role)["created"] == "yes"
        assert grant_readonly(store.db.engine, role)["created"] == "no"  # idempotent
        with store.db.engine.connect() as conn:
            conn.exec_driver_sql(f"SET ROLE {role}")  # undone by the rollback below
            stats = conn.execute(text("SELECT collection, documents, indexed_chunks FROM ragstore_collection_stats"))
            assert stats.all() == [("kb", 1, 1)]
            with pytest.raises(DBAPIError, match="permission denied"):
                conn.exec_driver_sql("DELETE FROM documents")
            conn.rollback()
            config = conn.execute(text("SELECT rolconfig FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar_one()
            assert "default_transaction_read_only=on" in config
    finally:
        with store.db.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
    with pytest.raises(InvalidInput, match="invalid role name"):
        grant_readonly(store.db.engine, "Robert'); DROP TABLE documents;--")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_readonly_role_is_refused_on_sqlite(store: RagStore) -> None:
    with pytest.raises(InvalidInput, match="need PostgreSQL"):
        grant_readonly(store.db.engine, "reports")


@postgres_only
def test_connections_killed_by_the_server_are_replaced_without_losing_a_write(store: RagStore) -> None:
    """What a server restart does to a pool: every connection dies. Pre-ping replaces them on next use."""
    store.collections.create("kb")
    first = store.documents.add_text("kb", "서울 지하철은 30분 안에 갈아타면 환승 할인이 된다.", title="subway")
    assert _kill_pool(store) >= 1
    second = store.documents.add_text(
        "kb", "Refunds reach the original card within five business days.", title="refunds"
    )
    assert {d.title for d in store.documents.list("kb")} == {"subway", "refunds"}
    assert first.document_id != second.document_id
    assert store.search("kb", "환승 할인", k=1).hits[0].title == "subway"


@postgres_only
def test_metadata_equality_filters_use_the_jsonb_gin_index(store: RagStore) -> None:
    from sqlalchemy import select

    from ragstore.db.filters import compile_filter
    from ragstore.db.models import Document

    store.collections.create("kb")
    store.documents.add(
        "kb",
        [
            {"text": "환불은 7일 안에 된다.", "metadata": {"lang": "ko", "year": 2024}},
            {"text": "Refunds take 7 days.", "metadata": {"lang": "en", "year": 2023}},
        ],
    )
    hits = store.search("kb", "refund", k=5, filter={"lang": "ko", "year": [2024, 2025]}).hits
    assert [h.metadata["lang"] for h in hits] == ["ko"]
    condition = compile_filter({"lang": "ko"}, postgres=True)
    statement = select(Document.id).where(condition)  # type: ignore[arg-type]
    compiled = statement.compile(store.db.engine)
    with store.db.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # two rows: make the planner show its options
        params = {k: json.dumps(v) for k, v in compiled.params.items()}
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}", params))
    assert "ix_documents_metadata_gin" in plan, plan


def _kill_pool(store: RagStore) -> int:
    from sqlalchemy import create_engine

    killer = create_engine(store.db.engine.url.difference_update_query(["options"]))
    with killer.begin() as conn:
        listed = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'ragstore' "
                "AND datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        pids = [int(pid) for (pid,) in listed]
        conn.execute(text("SELECT pg_terminate_backend(p) FROM unnest(CAST(:p AS int[])) AS p"), {"p": pids})
    # pg_terminate_backend only signals: wait (bounded) until those backends have exited, as a restarted
    # server's have by the time anyone reconnects; otherwise, on a busy machine, a connection can be checked
    # out before its FATAL message is on the socket.
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        with killer.begin() as conn:
            alive = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:p)"), {"p": pids})
            if alive.scalar_one() == 0:
                break
    killer.dispose()
    return len(pids)


@postgres_only
def test_a_read_right_after_the_server_killed_its_connection_reconnects(store: RagStore) -> None:
    """Connections used moments ago are not pinged (db/liveness.py): the closed socket must still be noticed."""
    store.collections.create("kb")
    store.documents.add_text("kb", "Refunds reach the original card within five business days.", title="refunds")
    assert store.search("kb", "refunds", k=1).hits
    assert _kill_pool(store) >= 1
    for _ in range(3):  # every pooled connection, each checked out moments after its last use
        assert store.db.fetch(text("SELECT 1")) == [(1,)]
    assert store.search("kb", "five business days", k=1).hits[0].title == "refunds"


@postgres_only
def test_single_reads_run_outside_a_transaction(store: RagStore) -> None:
    """`fetch` sends no BEGIN / ROLLBACK around its statement (two round trips saved on each search read)."""
    # In a transaction block, xact_start is the time of the BEGIN sent before; in autocommit, the statement's own.
    same = text("SELECT count(*) FROM pg_stat_activity WHERE pid = pg_backend_pid() AND xact_start = query_start")
    assert store.db.fetch(same) == [(1,)]
    with store.db.read() as session:  # a session still reads in one transaction
        assert session.execute(same).all() == [(0,)]


@postgres_only
def test_raw_reads_come_in_binary_format_with_python_types(store: RagStore) -> None:
    """`raw_postgres_rows` (the search's reads of vectors): bytes, not hex; JSON as dicts; errors as the domain's."""
    row = store.db.raw_postgres_rows(
        "SELECT %s::bigint, '\\x0102'::bytea, '{\"a\": 1}'::jsonb, 'x'::varchar(4), %s::bigint[]", (7, [1, 2])
    )
    assert row == [(7, b"\x01\x02", {"a": 1}, "x", [1, 2])]
    from ragstore.errors import MigrationError

    for read in (
        (lambda: store.db.fetch(text("SELECT no_such_column FROM collections"))),
        (lambda: store.db.raw_postgres_rows("SELECT no_such_column FROM collections", ())),
    ):
        with pytest.raises(MigrationError):  # classified as `fetch`'s errors are (db/failures.py)
            read()
    assert store.db.raw_postgres_rows("SELECT 1", ()) == [(1,)]  # the connection went back to the pool usable


@postgres_only
def test_tables_a_load_outgrew_are_analysed_so_hash_lookups_probe_the_key(store: RagStore) -> None:
    """db/planner_statistics.py: `embeddings` never analysed (autovacuum is off on the test server) had its
    900-hash lookups planned as a scan of every row of the model (1.4 s each at 1M rows). After the check
    analyses it, the lookup probes the primary key by hash; the check runs at most once per interval."""
    from sqlalchemy import select

    from ragstore.clock import ManualClock
    from ragstore.db.batches import IN_BATCH
    from ragstore.db.models import Embedding
    from ragstore.db.planner_statistics import INTERVAL_S

    with store.db.engine.begin() as conn:  # 300,000 embeddings of one model, not analysed
        conn.exec_driver_sql(
            "INSERT INTO embeddings (model, content_hash, dimension, vector) SELECT 'm', md5(g::text), 4, "
            "decode('00000000000000000000000000000000', 'hex') FROM generate_series(1, 300000) g"
        )
        conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")  # the counters visible at once, not in 1 s
    statistics = store.components.applier.statistics
    clock = ManualClock()
    statistics.clock = clock
    assert "embeddings" in statistics.refresh_if_due()
    assert statistics.refresh_if_due() == []  # within the interval: not even a check
    clock.advance(INTERVAL_S + 1)
    assert statistics.refresh_if_due() == []  # checked: nothing changed since
    wanted = [hashlib.md5(str(n).encode()).hexdigest() for n in range(1, 3 * IN_BATCH, 3)]
    statement = select(Embedding.content_hash).where(Embedding.model == "m", Embedding.content_hash.in_(wanted))
    compiled = statement.compile(store.db.engine, compile_kwargs={"render_postcompile": True})
    with store.db.engine.connect() as conn:
        assert len(conn.execute(statement).all()) == len(wanted)
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params))
    conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert conditions and all("content_hash" in line for line in conditions), plan
