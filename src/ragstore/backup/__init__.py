"""Backups: consistent snapshots of the store and its vectors, in a content-addressed repository.

`manager` makes, lists, verifies and prunes backups of an open store; `restore` puts one back (beside the
live store, verified, then swapped in); `readiness` answers whether a restore would work now.
"""

from ragstore.backup.errors import BackupDamaged, BackupError, BackupFailed, KeyProblem, NoSpace
from ragstore.backup.keys import generate_key
from ragstore.backup.manifest import Manifest

__all__ = ["BackupDamaged", "BackupError", "BackupFailed", "KeyProblem", "Manifest", "NoSpace", "generate_key"]
