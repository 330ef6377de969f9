"""Faults: each gives a clear error naming the backup and the file, and never a partial restore."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragstore.backup import BackupDamaged, NoSpace
from ragstore.config import Settings
from ragstore.errors import Conflict
from ragstore.schemas import ChunkInput, DocumentInput
from ragstore.service import RagStore, restore_backup

from backup_helpers import COLLECTION, answers, full_backup_then_add, load_corpus, sqlite_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    # No companion model: it would embed every bulk chunk of `add_bulk` (90 s a test), and what these tests
    # fault is the backup, not the cross-lingual embedding.
    return sqlite_settings(tmp_path, companion_model="none")


def titles(cfg: Settings) -> set[str]:
    conn = sqlite3.connect(cfg.data_dir / "ragstore.db")
    try:
        return {r[0] for r in conn.execute("SELECT title FROM documents")}
    finally:
        conn.close()


def blocks_of(repo: Path) -> list[Path]:
    return sorted((repo / "blocks").rglob("*"), key=lambda p: -p.stat().st_size if p.is_file() else 0)


def live_restore_fails_cleanly(cfg: Settings, backup_id: str, error: type[Exception], match: str) -> None:
    """A live restore that must fail: the live store is exactly as before and nothing is left beside it."""
    before = titles(cfg)
    with pytest.raises(error, match=match) as caught:
        restore_backup(cfg, backup_id)
    assert backup_id in str(caught.value)
    assert titles(cfg) == before
    assert not list(cfg.data_dir.glob(".restore-*")) and not list(cfg.data_dir.glob("pre-restore-*"))


def test_truncated_and_corrupted_blocks_and_a_truncated_manifest(cfg: Settings, embedder: Any, tmp_path: Path) -> None:
    with RagStore.open(cfg, embedder=embedder) as store:
        load_corpus(store)
        made = full_backup_then_add(store, "복원이 실패해도 남아 있어야 하는 문서", "keep me")
    repo = tmp_path / "repo"
    block = blocks_of(repo)[0]
    original = block.read_bytes()
    block.write_bytes(original[: len(original) // 2])  # truncated
    live_restore_fails_cleanly(cfg, made.id, BackupDamaged, rf"{block.name}.*(authentication|checksum|decompress)")
    damaged = bytearray(original)
    damaged[len(damaged) // 3] ^= 0xFF  # corrupted
    block.write_bytes(bytes(damaged))
    live_restore_fails_cleanly(cfg, made.id, BackupDamaged, rf"file (ragstore\.db|index/).*{block.name}")
    block.write_bytes(original)
    manifest = repo / "manifests" / made.id
    body = manifest.read_bytes()
    manifest.write_bytes(body[:-10])
    live_restore_fails_cleanly(cfg, made.id, BackupDamaged, "manifests/")
    manifest.write_bytes(body)
    assert "keep me" in titles(cfg)
    restore_backup(cfg, made.id, to=str(tmp_path / "copy"))  # intact again: it restores


def test_a_missing_chain_link_names_the_backup_that_wrote_it(cfg: Settings, embedder: Any, tmp_path: Path) -> None:
    with RagStore.open(cfg, embedder=embedder) as store:
        load_corpus(store)
        full = full_backup_then_add(store, "증분 백업용 문서", "delta")
        incremental = store.backups.create("incremental")
        assert incremental is not None
        # Someone deletes the full backup by hand, blocks and all: the incremental's chain is broken.
        repo = tmp_path / "repo"
        shared = set(store.backups.show(incremental.id).model_dump(mode="json")["files"][0].get("blocks_list", []))
        assert not shared  # show() gives block counts only; read the manifest for names
        from ragstore.backup.manager import open_repository

        full_manifest = open_repository(cfg, create=False).manifest(full.id)
        incremental_manifest = open_repository(cfg, create=False).manifest(incremental.id)
        reused = sorted(set(full_manifest.new_blocks) & incremental_manifest.referenced_blocks())
        assert reused
        for digest in full_manifest.new_blocks:
            (repo / "blocks" / digest[:2] / digest).unlink()
        # The full's manifest is still there to name the writer; the report names the block and the backup.
        with pytest.raises(BackupDamaged, match=rf"{incremental.id}.*missing.*written by backup {full.id}"):
            store.backups.verify(incremental.id)
        report = store.backups.dr_report()
        assert report.status == "failing"
        assert report.newest.chain_complete is False
    live_restore_fails_cleanly(cfg, incremental.id, BackupDamaged, "chain is broken and nothing was restored")


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A real filesystem that fills up: a tmpfs of `size`, mounted for the test (root only)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()}): needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def add_bulk(store: RagStore, dimension: int, documents: int = 100) -> None:
    """40 chunks per document of random text (which does not compress), vectors given: no model call (with the
    companion model off, as the tests calling it set it)."""
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((documents * 40, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs = [
        DocumentInput(
            title=f"big {d}",
            source_uri=f"test:big-{d}",
            chunks=[ChunkInput(text=os.urandom(600).hex(), vector=vectors[d * 40 + i]) for i in range(40)],
        )
        for d in range(documents)
    ]
    store.documents.add(COLLECTION, docs)
    store.index.wait()


def test_a_full_disk_fails_the_backup_cleanly_and_the_next_one_works(embedder: Any, tmp_path: Path) -> None:
    from ragstore.backup.snapshot import IndexExport, estimate_bytes
    from ragstore.vectors.registry import backend_spec

    with small_filesystem(tmp_path / "tiny", "512k") as tiny, small_filesystem(tmp_path / "small", "4m") as small:
        cfg = sqlite_settings(tmp_path, backup_repository=str(tiny / "repo"), companion_model="none")
        with RagStore.open(cfg, embedder=embedder) as store:
            load_corpus(store)
            add_bulk(store, embedder.dimension)
            # Refused before it starts: the repository is all but full.
            with pytest.raises(NoSpace, match=rf"{tiny / 'repo'}.*free"):
                store.backups.create("full")
            # Space for the check but not for the blocks: the disk fills up while they are written.
            store.index.persist()
            index = IndexExport(backend_spec(cfg.vector_backend).file_keeper(), cfg.index_dir)
            needed = estimate_bytes(cfg.data_dir / "ragstore.db", index)
            assert needed > 8_000_000
            subprocess.run(["mount", "-o", f"remount,size={needed // 2}", str(small)], check=True)
            store.backups.manager.settings = cfg.model_copy(
                update={"backup_repository": str(small / "repo"), "backup_compression": "none"}
            )
            with pytest.raises(NoSpace, match=rf"{small / 'repo'} is full: no space left writing blocks/"):
                store.backups.create("full")
            assert store.backups.list() == []  # nothing that looks complete
            failed = store.backups.history()[0]
            assert failed.state == "failed" and "no space left" in failed.error
            assert not list((small / "repo" / "tmp").glob("*"))  # the part being written was removed
            assert not list(cfg.backup_staging.glob("*"))  # and the staged snapshot
            # With room again, the next backup works; a restore onto a full disk fails and leaves nothing.
            store.backups.manager.settings = cfg.model_copy(update={"backup_repository": str(tmp_path / "repo")})
            made = store.backups.create("full")
            assert made is not None
            for p in sorted(small.rglob("*"), reverse=True):
                p.unlink() if p.is_file() else p.rmdir()
            subprocess.run(["mount", "-o", "remount,size=2m", str(small)], check=True)
            with pytest.raises(NoSpace, match="no space left"):
                restore_backup(store.backups.settings, made.id, to=str(small / "copy"))
            assert not (small / "copy" / "ragstore.db").exists()


def test_a_backup_killed_mid_way_leaves_no_complete_looking_entry(cfg: Settings, embedder: Any, tmp_path: Path) -> None:
    with RagStore.open(cfg, embedder=embedder) as store:
        load_corpus(store)
        add_bulk(store, embedder.dimension)  # big enough that the backup takes a while
        store.index.wait()
        before = answers(store)
    env = {
        **os.environ,
        "RAGSTORE_DATA_DIR": str(cfg.data_dir),
        "RAGSTORE_BACKUP_REPOSITORY": str(tmp_path / "repo"),
        "RAGSTORE_BACKUP_COMPRESSION": "gzip",
        "RAGSTORE_BACKUP_COMPRESSION_LEVEL": "9",
        "RAGSTORE_BACKUP_THREADS": "1",
        "RAGSTORE_BACKUP_BLOCK_KB": "4",
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "ragstore.cli", "backup", "create", "--kind", "full"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    blocks = tmp_path / "repo" / "blocks"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        blocks.is_dir() and sum(1 for p in blocks.rglob("*") if p.is_file()) >= 3
    ):
        assert child.poll() is None, child.communicate()
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not list((tmp_path / "repo" / "manifests").glob("*"))
    with RagStore.open(cfg, embedder=embedder) as store:
        assert store.backups.list() == []
        assert store.backups.history()[0].state == "running"  # until the next run finds it dead
        made = store.backups.create("full")
        assert made is not None
        runs = store.backups.history()
        assert runs[0].state == "complete" and runs[1].state == "interrupted"
        assert store.backups.verify()[0].ok
        assert [b.id for b in store.backups.list()] == [made.id]
        pruned = store.backups.prune()
        assert pruned.removed_blocks >= 0  # the killed run's unreferenced blocks go
        assert store.backups.verify()[0].ok
        assert answers(store) == before


def test_two_backups_never_run_at_once(cfg: Settings, embedder: Any, tmp_path: Path) -> None:
    with RagStore.open(cfg, embedder=embedder) as store:
        load_corpus(store)
        store.backups.create("snapshot")
        lock = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import fcntl,sys,time; f=open(sys.argv[1],'a+b'); fcntl.flock(f, fcntl.LOCK_EX); "
                "print('held', flush=True); time.sleep(60)",
                str(tmp_path / "repo" / "lock"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert lock.stdout is not None and lock.stdout.readline().strip() == "held"
            with pytest.raises(Conflict, match="another backup, prune or restore is running"):
                store.backups.create("full")
            with pytest.raises(Conflict):
                store.backups.prune()
        finally:
            lock.kill()
            lock.wait()
        assert store.backups.create("incremental") is not None


def test_restore_refuses_while_another_process_has_the_store_open(cfg: Settings, embedder: Any) -> None:
    with RagStore.open(cfg, embedder=embedder) as store:
        load_corpus(store)
        made = store.backups.create("full")
        assert made is not None
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1]); c.execute('select 1'); "
            "print('open', flush=True); time.sleep(60)",
            str(cfg.data_dir / "ragstore.db"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(Conflict, match=rf"process {holder.pid} has .*ragstore\.db open"):
            restore_backup(cfg, made.id)
    finally:
        holder.kill()
        holder.wait()
    assert not list(cfg.data_dir.glob(".restore-*"))
    assert restore_backup(cfg, made.id).consistency.problems == 0
