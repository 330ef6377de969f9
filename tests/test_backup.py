"""Backups and restores of real stores (SQLite and PostgreSQL): what comes back is what was there."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ragstore.backup import BackupDamaged, KeyProblem
from ragstore.backup.keys import generate_key
from ragstore.backup.retention import Retention, select_kept
from ragstore.config import Settings, load_settings
from ragstore.db.identity import store_identity
from ragstore.errors import ConfigError, InvalidInput
from ragstore.service import RagStore, restore_backup

from backup_helpers import (
    COLLECTION,
    QUERIES,
    answers,
    assert_same_up_to_ties,
    backup_settings,
    copied_settings,
    copy_target,
    full_backup_then_add,
    load_corpus,
    repo_files,
    sqlite_settings,
)


@pytest.fixture
def backup_cfg(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    return backup_settings(make_settings, tmp_path)


def test_restore_reproduces_identical_search_results(
    backup_cfg: Settings, embedder: Any, tmp_path: Path, database_url: str | None, postgres_admin: Any
) -> None:
    with RagStore.open(backup_cfg, embedder=embedder) as store:
        load_corpus(store)
        before = answers(store)
        made = store.backups.create("full", note="before the change")
        assert made is not None and made.kind == "full" and made.note == "before the change"
        identity = store_identity(store.db)
        # Written after the backup: the restored copy must not have it.
        store.documents.add_text(COLLECTION, "백업 이후에 추가된 문서입니다. added after the backup", title="later")
        store.index.wait()
        manifest = store.backups.show(made.id)
        target = str(tmp_path / "restored") if database_url is None else postgres_admin.new_database_url()
        result = store.backups.restore_copy(made.id, target)
    assert result.consistency.problems == 0 and result.consistency.found == 0  # nothing to repair
    assert result.verify.counts == "match"
    with RagStore.open(copied_settings(backup_cfg, result), embedder=embedder) as copy:
        assert answers(copy) == before
        assert store_identity(copy.db) != identity  # cache keys of the old store never match the copy
        if database_url is not None:  # pg_restore brings no planner statistics: the restore analysed
            unanalysed = copy.db.fetch(
                text(
                    "SELECT relname FROM pg_stat_user_tables WHERE relname IN ('embeddings', 'document_chunks') "
                    "AND last_analyze IS NULL AND last_autoanalyze IS NULL"
                )
            )
            assert unanalysed == [], unanalysed
        docs = copy.documents.list(COLLECTION, limit=1000)
        assert "later" not in {d.title for d in docs}
        assert len(docs) == manifest.collections[0].documents
    # The manifest says what the backup holds.
    assert manifest.alembic_revision and manifest.ragstore_version
    assert manifest.embedding_models == [embedder.model]
    assert manifest.collections[0].chunks > 0
    assert all(f.sha256 and f.size > 0 for f in manifest.files)
    assert {"database_copy_s", "store_s", "total_s"} <= set(manifest.timings)
    if database_url is None:
        assert manifest.index_included and any(f.role == "index" for f in manifest.files)
    else:
        assert manifest.database_format == "pg_dump-custom"


def test_incremental_stores_only_changed_blocks_and_restores_the_chain(
    backup_cfg: Settings, embedder: Any, tmp_path: Path, database_url: str | None, postgres_admin: Any
) -> None:
    with RagStore.open(backup_cfg, embedder=embedder) as store:
        load_corpus(store)
        full = full_backup_then_add(store, "증분 백업 시험 문서. incremental backup test document", "delta")
        after_change = answers(store)
        incremental = store.backups.create("incremental")
        again = store.backups.create("incremental")  # nothing changed since: almost nothing to store
        assert incremental is not None and again is not None
        assert incremental.stored_bytes < full.stored_bytes
        assert again.stored_bytes <= incremental.stored_bytes
        assert store.backups.show(incremental.id).parent == full.id
        assert [b.id for b in store.backups.list()] == [full.id, incremental.id, again.id]
        verified = store.backups.verify(every=True)
        assert [v.ok for v in verified] == [True, True, True]
        result = store.backups.restore_copy(
            incremental.id, copy_target(database_url, tmp_path / "copy", postgres_admin)
        )
        assert result.consistency.problems == 0
    with RagStore.open(copied_settings(backup_cfg, result), embedder=embedder) as copy:
        assert answers(copy) == after_change
        assert "delta" in {d.title for d in copy.documents.list(COLLECTION, limit=1000)}


def test_snapshot_is_the_database_alone_and_restore_rebuilds_the_index(
    backup_cfg: Settings, embedder: Any, tmp_path: Path, database_url: str | None, postgres_admin: Any
) -> None:
    with RagStore.open(backup_cfg, embedder=embedder) as store:
        load_corpus(store)
        before = answers(store)
        snap = store.backups.create("snapshot")
        assert snap is not None and not snap.index_included
        assert [f.role for f in store.backups.show(snap.id).files] == ["database"]
        result = store.backups.restore_copy(snap.id, copy_target(database_url, tmp_path / "copy", postgres_admin))
        assert result.index == "rebuilt from the embeddings table"
        assert result.consistency.problems == 0
    calls_before = embedder.texts_embedded
    with RagStore.open(copied_settings(backup_cfg, result), embedder=embedder) as copy:
        assert answers(copy) == before
    assert embedder.texts_embedded - calls_before <= len(QUERIES)  # only the queries: no chunk embedded again


def test_live_restore_swaps_in_the_backup_and_keeps_the_old_store_aside(tmp_path: Path, embedder: Any) -> None:
    backup_cfg = sqlite_settings(tmp_path)
    with RagStore.open(backup_cfg, embedder=embedder) as store:
        load_corpus(store)
        before = answers(store)
        made = full_backup_then_add(store, "복원되면 사라져야 하는 문서", "doomed")
    result = restore_backup(backup_cfg, made.id)
    assert result.live and result.consistency.problems == 0
    with RagStore.open(backup_cfg, embedder=embedder) as store:
        assert answers(store) == before
        assert "doomed" not in {d.title for d in store.documents.list(COLLECTION, limit=1000)}
        runs = store.backups.history()
        assert runs[0].action == "restore" and runs[0].state == "complete"
        # The backup's own run was still `running` in the snapshot; the restored log says it completed.
        mine = [r for r in runs if r.action == "backup" and r.backup_id == made.id]
        assert mine and mine[0].state == "complete"
    aside = sorted(backup_cfg.data_dir.glob("pre-restore-*"))
    assert len(aside) == 1 and (aside[0] / "ragstore.db").is_file()
    conn = sqlite3.connect(aside[0] / "ragstore.db")
    titles = {r[0] for r in conn.execute("SELECT title FROM documents")}
    conn.close()
    assert "doomed" in titles  # nothing of the old store is lost
    assert not list(backup_cfg.data_dir.glob(".restore-*"))


def test_encrypted_backups_need_the_right_key(
    make_settings: Callable[..., Settings], embedder: Any, tmp_path: Path, database_url: str | None, postgres_admin: Any
) -> None:
    key = generate_key()
    cfg = backup_settings(make_settings, tmp_path, backup_encryption_key=key)
    with RagStore.open(cfg, embedder=embedder) as store:
        load_corpus(store)
        made = store.backups.create("full")
        assert made is not None and made.encrypted
        assert store.backups.verify()[0].ok
    # No plaintext of the corpus is visible in the repository.
    blob = b"".join(p.read_bytes() for p in repo_files(tmp_path / "repo"))
    assert "서울".encode() not in blob and b"SQLite format 3" not in blob
    no_key = cfg.model_copy(update={"backup_encryption_key": None})
    with (
        RagStore.open(no_key, embedder=embedder) as store,
        pytest.raises(KeyProblem, match="encrypted and BACKUP_ENCRYPTION_KEY is not set"),
    ):
        store.backups.list()
    other = cfg.model_copy(update={"backup_encryption_key": cfg.backup_encryption_key.__class__(generate_key())})
    with pytest.raises(KeyProblem, match="not the key the repository"):
        restore_backup(other, made.id, to=copy_target(database_url, tmp_path / "copy", postgres_admin))
    assert not (tmp_path / "copy" / "ragstore.db").exists()


def test_every_flipped_byte_is_detected(backup_cfg: Settings, embedder: Any, tmp_path: Path) -> None:
    from backup_helpers import flip_byte, restore_byte

    with RagStore.open(backup_cfg, embedder=embedder) as store:
        load_corpus(store)
        made = store.backups.create("full")
        assert made is not None
        store.backups.verify()
        files = repo_files(tmp_path / "repo")
        assert len(files) > 5
        for path in files:
            for offset in (0, None, -1):
                at, original = flip_byte(path, None if offset is None else offset % path.stat().st_size)
                try:
                    if path.parent.name == "verified":
                        # A damaged verify record proves nothing: the backup reads as not verified.
                        listed = store.backups.list()[0]
                        assert listed.verified_at is None
                        assert "unreadable" in listed.verify.error
                        continue
                    with pytest.raises((BackupDamaged, KeyProblem)) as caught:
                        store.backups.verify(made.id)
                    assert made.id in caught.value.message or "repository" in caught.value.message
                finally:
                    restore_byte(path, at, original)
        assert store.backups.verify(made.id)[0].ok


def test_retention_keeps_the_newest_of_each_period() -> None:
    from datetime import datetime, timedelta

    start = datetime(2026, 1, 1, 0, 30)
    backups = [(f"b{i:03d}", start + timedelta(hours=6 * i)) for i in range(200)]  # 50 days, 4 a day
    kept = select_kept(backups, Retention(hourly=3, daily=5, weekly=2, monthly=2))
    newest = backups[-1][0]
    assert kept[newest][0] == "newest"
    assert sum("hourly" in r for r in kept.values()) == 3
    assert sum("daily" in r for r in kept.values()) == 5
    assert sum("weekly" in r for r in kept.values()) == 2
    assert sum("monthly" in r for r in kept.values()) == 2
    assert len(kept) < 12
    assert select_kept([], Retention()) == {}


def test_prune_removes_forgotten_backups_and_their_unshared_blocks(
    make_settings: Callable[..., Settings], embedder: Any, tmp_path: Path
) -> None:
    cfg = backup_settings(
        make_settings, tmp_path, backup_keep_hourly=1, backup_keep_daily=0, backup_keep_weekly=0, backup_keep_monthly=0
    )
    with RagStore.open(cfg, embedder=embedder) as store:
        load_corpus(store)
        first = full_backup_then_add(store, "두 번째 백업 전에 추가", "second")
        second = store.backups.create("incremental")
        assert second is not None
        dry = store.backups.prune(dry_run=True)
        assert dry.removed_backups == [first.id] and len(store.backups.list()) == 2
        pruned = store.backups.prune()
        assert pruned.removed_backups == [first.id]
        assert pruned.removed_maps >= 1 and pruned.freed_bytes > 0  # the full's database map at least
        assert [b.id for b in store.backups.list()] == [second.id]
        # The incremental still restores: every block it names was kept, wherever it was first written.
        assert store.backups.verify(second.id)[0].ok


def test_bad_settings_and_arguments_name_the_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: Any
) -> None:
    backup_cfg = sqlite_settings(tmp_path)
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEY", "too-short")
    with pytest.raises(ConfigError, match="BACKUP_ENCRYPTION_KEY"):
        load_settings(tmp_path)
    monkeypatch.delenv("BACKUP_ENCRYPTION_KEY")
    monkeypatch.setenv("RAGSTORE_BACKUP_SCHEDULE_FULL", "every night")
    with pytest.raises(ConfigError, match="RAGSTORE_BACKUP_SCHEDULE_FULL"):
        load_settings(tmp_path)
    monkeypatch.delenv("RAGSTORE_BACKUP_SCHEDULE_FULL")
    monkeypatch.setenv("RAGSTORE_BACKUP_REPOSITORY", "s3://bucket/backups")
    with (
        RagStore.open(load_settings(tmp_path, data_dir=tmp_path / "d"), embedder=embedder) as store,
        pytest.raises(ConfigError, match="s3:// repositories are not supported"),
    ):
        store.backups.create("full")
    with RagStore.open(backup_cfg, embedder=embedder) as store:
        with pytest.raises(InvalidInput, match="--kind must be one of"):
            store.backups.create("weekly")
        made = store.backups.create("snapshot")
        assert made is not None
        (tmp_path / "occupied").mkdir()
        (tmp_path / "occupied" / "ragstore.db").write_bytes(b"someone's data")
        with pytest.raises(InvalidInput, match="is not empty"):
            store.backups.restore_copy(made.id, str(tmp_path / "occupied"))
        assert (tmp_path / "occupied" / "ragstore.db").read_bytes() == b"someone's data"


def test_a_milvus_store_backs_up_its_database_and_restores_by_rebuilding_the_vectors(
    tmp_path: Path, embedder: Any
) -> None:
    """Milvus (here Milvus Lite) keeps derived data only: the backup holds SQL, the restore rebuilds from it."""
    pytest.importorskip("pymilvus")
    cfg = sqlite_settings(tmp_path, vector_backend="milvus")

    with RagStore.open(cfg, embedder=embedder) as store:
        load_corpus(store)
        before = answers(store)
        made = store.backups.create("full")
        assert made is not None and not made.index_included
        assert store.backups.show(made.id).index_restore == "rebuild from the embeddings table"
        # Beside the live store: the copy gets an embedded index of its own, never the live Milvus collections.
        copy = store.backups.restore_copy(made.id, str(tmp_path / "copy"))
        assert copy.consistency.problems == 0
        store.documents.add_text(COLLECTION, "밀버스 복원 뒤에는 없어야 할 문서", title="gone after restore")
        store.index.wait()
    with RagStore.open(copied_settings(cfg, copy), embedder=embedder) as restored:
        assert restored.components.vectors.name == "embedded"
        # Milvus scores in f32, the embedded index in f16: the same answers up to near-ties.
        assert_same_up_to_ties(answers(restored), before)
    result = restore_backup(cfg, made.id)  # over the live store: its Milvus collections are rebuilt
    assert result.consistency.problems == 0 and result.rebuilt == {COLLECTION: made.chunks}
    with RagStore.open(cfg, embedder=embedder) as store:
        assert store.components.vectors.name == "milvus"
        assert_same_up_to_ties(answers(store), before)


def test_live_restore_on_postgresql_swaps_the_databases(tmp_path: Path, embedder: Any, postgres_admin: Any) -> None:
    url = postgres_admin.created_database_url()
    cfg = sqlite_settings(tmp_path, database_url=url)
    with RagStore.open(cfg, embedder=embedder) as store:
        load_corpus(store)
        before = answers(store)
        made = full_backup_then_add(store, "복원되면 사라질 문서", "doomed")
    result = restore_backup(cfg, made.id)
    assert result.live and result.consistency.problems == 0 and result.verify.counts == "match"
    with RagStore.open(cfg, embedder=embedder) as store:
        assert answers(store) == before
        assert "doomed" not in {d.title for d in store.documents.list(COLLECTION, limit=1000)}
    import psycopg
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin = make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin) as conn:
        kept = [
            r[0]
            for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{name}_pre_restore_%",))
        ]
    assert len(kept) == 1  # the old database is kept aside, renamed


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_schema_backup_is_not_swapped_over_a_whole_database(backup_cfg: Settings, embedder: Any) -> None:
    with RagStore.open(backup_cfg, embedder=embedder) as store:
        store.collections.create(COLLECTION)
        store.documents.add_text(COLLECTION, "스키마 하나", title="one")
        made = store.backups.create("snapshot")
        assert made is not None
    with pytest.raises(InvalidInput, match="not a whole database"):
        restore_backup(backup_cfg, made.id)


def test_a_backup_taken_while_writes_wait_for_the_index_restores_them_indexed(tmp_path: Path, embedder: Any) -> None:
    """Chunks the backup caught `pending` (stored, not yet in the index) are indexed by the restored store."""
    cfg = sqlite_settings(tmp_path)
    with RagStore.open(cfg, embedder=embedder) as store:
        store.collections.create(COLLECTION)
        store.documents.add_text(COLLECTION, "색인이 끝난 문서", title="indexed")
        outcomes = store.documents.add(
            COLLECTION, [{"text": "아직 색인되지 않은 문서", "title": "pending"}], wait=False
        )
        assert outcomes[0].index_state == "pending"
        made = store.backups.create("full")
        assert made is not None
        manifest = store.backups.show(made.id)
        assert manifest.collections[0].indexed_chunks < manifest.collections[0].chunks
        result = store.backups.restore_copy(made.id, str(tmp_path / "copy"))
    assert result.consistency.problems == 0
    with RagStore.open(copied_settings(cfg, result), embedder=embedder) as copy:
        hits = copy.search(COLLECTION, "아직 색인되지 않은 문서", k=2, mode="dense").hits
        assert "pending" in {h.title for h in hits}
