"""The manifest: everything a backup holds and everything needed to check a restore against it.

It is the last object a backup writes, and its presence is what makes a backup exist: a backup killed
before that point leaves only blocks, which nothing lists and `backup prune` removes. The models are public
(`backup show` returns the manifest), so they live in `ragstore.schemas`; the backup package imports them
from here.
"""

from __future__ import annotations

from ragstore.schemas.backups import BackupKind, CollectionCounts, FileEntry, Manifest

__all__ = ["BackupKind", "CollectionCounts", "FileEntry", "Manifest"]
