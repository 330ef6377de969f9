"""`ragstore db stats` (issue #20): sizes, rows and use of every table and index, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from ragstore.cli import app
from ragstore.db.stats import database_stats
from ragstore.service import RagStore

DIM = 8


def test_stats_name_every_table_and_index_with_its_size_and_rows(store: RagStore) -> None:
    store.collections.create("kb", embedding_model="synthetic", dimension=DIM)
    docs = [{"text": f"doc {i}", "chunks": [{"text": f"doc {i}", "vector": [float(i + 1)] * DIM}]} for i in range(7)]
    store.documents.add("kb", docs)
    if not store.db.is_sqlite:
        with store.db.engine.connect() as conn:  # the statistics PostgreSQL's row estimates come from
            conn.execute(text("ANALYZE"))
            conn.commit()
        store.db.engine.dispose()  # a server process publishes its block counts when its connection ends
    stats = database_stats(store.db)
    tables = {t.name: t for t in stats.tables}
    assert tables["documents"].rows == 7 and tables["document_chunks"].rows == 7
    assert tables["collections"].rows == 1
    assert all(t.bytes is not None for t in tables.values())  # 0 for a table with no page yet (a partitioned parent)
    assert tables["documents"].bytes and tables["document_chunks"].bytes and tables["chunk_lexemes"].bytes
    indexes = {i.name: i for i in stats.indexes}
    assert indexes["ix_sync_operations_state_next"].table == "sync_operations"
    assert stats.size_bytes >= sum(t.bytes or 0 for t in tables.values() if store.db.is_sqlite)
    if store.db.is_sqlite:
        assert stats.dialect == "sqlite" and stats.wal_bytes is not None and stats.cache_hit_ratio is None
        assert all(i.scans is None for i in indexes.values())  # SQLite does not count index use
        assert "chunk_lexemes_fts_data" not in tables  # FTS5's storage belongs to its table
    else:
        assert stats.dialect == "postgresql" and stats.connections >= 1
        assert stats.cache_hit_ratio is not None and 0 <= stats.cache_hit_ratio <= 1
        assert tables["documents"].dead_rows is not None and tables["documents"].bloat_ratio is not None
        assert all(i.scans is not None for i in indexes.values())


def test_the_cli_prints_them_and_their_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None
) -> None:
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(tmp_path / "data"))
    if database_url is not None:
        monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    shown = runner.invoke(app, ["db", "stats", "--json"])
    assert shown.exit_code == 0, shown.output
    stats = json.loads(shown.output)
    assert {"api_keys", "documents", "audit_logs"} <= {t["name"] for t in stats["tables"]}
    assert next(t for t in stats["tables"] if t["name"] == "api_keys")["rows"] >= (1 if database_url is None else 0)
    table = runner.invoke(app, ["db", "stats"])
    assert table.exit_code == 0 and "api_keys" in table.output and "in all" in table.output
