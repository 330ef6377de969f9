"""The backup's write pipeline on its own: memory bounded whatever the file's size, and a failing stage that
stops every other before the backup is reported failed (so nothing goes on writing into the repository)."""

from __future__ import annotations

import os
import threading
import tracemalloc
from concurrent.futures import CancelledError
from pathlib import Path

import pytest

from ragstore.backup.blocks import WINDOW, assemble_file
from ragstore.backup.errors import BackupFailed
from ragstore.backup.pipeline import IN_FLIGHT, BlockWriter, SnapshotWriter
from ragstore.backup.repository import Repository
from ragstore.backup.snapshot import StagedFile
from ragstore.backup.storage import LocalStorage

MIB = 1024 * 1024


def repository(root: Path) -> Repository:
    return Repository.open(LocalStorage(root), codec="zstd", level=1, key=None, create=True)


def pipeline_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("ragstore-backup_", "ragstore-backup-early_"))]


def test_a_large_file_is_written_in_bounded_memory_and_reads_back_the_same(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    with open(source, "wb") as f:
        for n in range(96):  # random data (frames as large as windows), with repeated pages in every window
            f.write(os.urandom(MIB // 2) + bytes(MIB // 4) + (b"%d" % n) * (MIB // 4 // len(b"%d" % n)))
    repo = repository(tmp_path / "repo")
    writer = BlockWriter(repo, unit_size=4096, threads=3)
    tracemalloc.start()
    try:
        entry = writer.write_file(source, "big.bin", "database", "fixed", map_name="maps/b/0", previous=None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        writer.close()
    # About IN_FLIGHT windows and a frame per encoding thread, never the file (96 MiB).
    assert peak < (2 * IN_FLIGHT + 8) * WINDOW, f"peak {peak / MIB:.1f} MiB"
    assert entry.size == 96 * MIB and entry.units == 96 * MIB // 4096
    assert entry.new_units < entry.units  # the repeated pages were stored once per window
    assemble_file(repo, entry, tmp_path / "back.bin", where="test", block_limit=WINDOW + 4 * 4096)
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()


def test_a_failing_write_fails_the_file_and_leaves_no_stage_running(tmp_path: Path) -> None:
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(8 * MIB))
    repo = repository(tmp_path / "repo")
    (tmp_path / "repo" / "blocks").write_bytes(b"")  # a file where the blocks folder goes: every put fails
    writer = BlockWriter(repo, unit_size=4096, threads=3)
    try:
        with pytest.raises(NotADirectoryError):
            writer.write_file(source, "f.bin", "database", "fixed", map_name="maps/f/0", previous=None)
    finally:
        writer.close()
    assert pipeline_threads() == []


def test_index_files_stored_during_the_database_copy_stop_when_the_copy_fails(tmp_path: Path) -> None:
    staged = []
    for n in range(2):
        path = tmp_path / f"{n}.usearch"
        with open(path, "wb") as f:
            f.truncate(256 * MIB)  # sparse: quick to make, and long enough to be mid-way when the copy fails
        staged.append(StagedFile(path, f"index/{n}.usearch", "index", "fixed"))
    repo = repository(tmp_path / "repo")
    writer = SnapshotWriter(repo, backup_id="b", parent=None, unit_size=4096, threads=2)
    writer.start(staged)
    writer.close()  # what the backup does when the database copy raises: it returns with nothing running
    assert pipeline_threads() == []
    written = sorted((tmp_path / "repo").rglob("*"))
    with pytest.raises((BackupFailed, CancelledError)):  # stopped mid-way, or before it began
        writer.store(staged)
    assert sorted((tmp_path / "repo").rglob("*")) == written
