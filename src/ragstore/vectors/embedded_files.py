"""The embedded index's files: their layout, and how backups export, verify and place them.

Each collection is `<dir>/<collection_id>.usearch` plus `<collection_id>.json`, the sidecar holding the
outbox sequence the file contains (vectors/embedded.py writes them). This module is the one place that
knows that layout; backups reach it through the `KeepsFiles` classmethods, without opening an index.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ragstore.vectors.base import IndexFilesDamaged, KeepsFiles

if TYPE_CHECKING:
    from usearch.index import Index

__all__ = ["DATA_SUFFIX", "LOCK_NAME", "META_SUFFIX", "EmbeddedFiles", "index_files", "usearch_index"]

DATA_SUFFIX, META_SUFFIX = ".usearch", ".json"
LOCK_NAME = ".lock"  # flock'd while a replica saves or a backup exports: files are replaced whole


def index_files(directory: Path, collection_id: int) -> tuple[Path, Path]:
    """A collection's index file and its sidecar (format, dimension, dtype, applied_seq, count)."""
    return directory / f"{collection_id}{DATA_SUFFIX}", directory / f"{collection_id}{META_SUFFIX}"


def usearch_index() -> type[Index]:
    """usearch's Index class, imported on first use: opening a store for a listing (`ragstore collections
    list`) must not load the vector library."""
    from usearch.index import Index

    return Index


class EmbeddedFiles(KeepsFiles):
    """The embedded index's `KeepsFiles` side: whole files, under the directory's lock."""

    @classmethod
    def export_files(cls, directory: Path, collection_ids: Sequence[int], dest: Path) -> dict[int, int]:
        """Copy each collection's pair under the directory's lock, so no replica replaces a pair mid-copy."""
        dest.mkdir(parents=True, exist_ok=True)
        directory.mkdir(parents=True, exist_ok=True)
        counts: dict[int, int] = {}
        with open(directory / LOCK_NAME, "a+b") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            for cid in collection_ids:
                data, meta = index_files(directory, cid)
                if not (data.is_file() and meta.is_file()):
                    continue  # never saved (empty): the restore builds it from SQL
                shutil.copyfile(data, dest / data.name)
                shutil.copyfile(meta, dest / meta.name)
                counts[cid] = int(json.loads(meta.read_text()).get("count", 0))
        return counts

    @classmethod
    def verify_files(cls, folder: Path) -> dict[int, int]:
        """Vectors in each index file, read from the file itself, and checked against its sidecar's count."""
        counts: dict[int, int] = {}
        for meta in sorted(folder.glob(f"*{META_SUFFIX}")):
            data = meta.with_suffix(DATA_SUFFIX)
            try:
                recorded = int(json.loads(meta.read_text())["count"])
                loaded = len(usearch_index().restore(str(data), view=True) or [])
            except Exception as exc:
                raise IndexFilesDamaged(
                    f"index file {data.name} cannot be loaded ({type(exc).__name__}: {exc})"
                ) from None
            if recorded != loaded:
                raise IndexFilesDamaged(f"index file {data.name} holds {loaded} vectors, its sidecar says {recorded}")
            counts[int(meta.stem)] = loaded
        return counts

    @classmethod
    def files_size(cls, directory: Path) -> int:
        """The index files' bytes (the sidecars are a few hundred bytes each)."""
        if not directory.is_dir():
            return 0
        return sum(p.stat().st_size for p in directory.glob(f"*{DATA_SUFFIX}"))

    @classmethod
    def place_files(cls, restored: Path, directory: Path, *, aside: Path | None) -> None:
        """Whole-directory moves: the pairs go in as the backup holds them; their sequences say what to replay."""
        if directory.is_dir() and aside is not None and any(directory.iterdir()):
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.replace(directory, aside)
        shutil.rmtree(directory, ignore_errors=True)
        if restored.is_dir():
            directory.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(restored), str(directory))
