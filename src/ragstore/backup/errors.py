"""What can go wrong with a backup, each naming the backup and the file, so an operator knows where to look."""

from __future__ import annotations

from ragstore.errors import RagstoreError

__all__ = ["BackupDamaged", "BackupError", "KeyProblem", "NoSpace"]


class BackupError(RagstoreError):
    """A backup could not be made, read or restored; nothing live was changed."""

    code = "backup_error"


class BackupDamaged(BackupError):
    """A file of a backup is missing, truncated or altered (its checksum or its authentication tag fails)."""

    code = "backup_damaged"


class KeyProblem(BackupError):
    """The encryption key is missing, malformed, or not the key this repository was written with."""

    code = "backup_key"


class NoSpace(BackupError):
    """A disk filled up (or would): the repository, the staging area or the restore target."""

    code = "backup_no_space"
