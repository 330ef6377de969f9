"""What can go wrong with a backup, each naming the backup and the file, so an operator knows where to look.

`BackupError` is the family (catch it to catch any backup problem); it is not a category of its own, because
backup problems differ in whose problem they are. Each member belongs to exactly one category of
`ragstore.errors`, which gives it its HTTP status and exit code:

* `BackupDamaged`, `KeyProblem`: the backup or the key the caller named cannot be used -> InvalidInput (422, 2);
* `NoSpace`: a disk is full -> InsufficientStorage (507, 1);
* `BackupFailed`: anything else (pg_dump missing, a file changed while read) -> OperationFailed (500, 1).
"""

from __future__ import annotations

from typing import Any

from ragstore.errors import InsufficientStorage, InvalidInput, OperationFailed

__all__ = ["BackupDamaged", "BackupError", "BackupFailed", "KeyProblem", "NoSpace"]


class BackupError(Exception):
    """A backup could not be made, read or restored; nothing live was changed.

    The family only: it is never raised itself (a bare one would have no category, so neither the API nor
    the CLI would know how to report it); raise one of its members.
    """

    message: str
    details: dict[str, object]

    def __new__(cls, *args: Any, **kwargs: Any) -> BackupError:
        if cls is BackupError:
            raise TypeError("BackupError is a family: raise BackupFailed, BackupDamaged, KeyProblem or NoSpace")
        return super().__new__(cls, *args, **kwargs)


class BackupFailed(BackupError, OperationFailed):
    """A backup, verify or restore failed for a reason of ragstore's environment (a missing tool, a changed file)."""

    code = "backup_error"


class BackupDamaged(BackupError, InvalidInput):
    """A file of a backup is missing, truncated or altered (its checksum or its authentication tag fails)."""

    code = "backup_damaged"


class KeyProblem(BackupError, InvalidInput):
    """The encryption key is missing, malformed, or not the key this repository was written with."""

    code = "backup_key"


class NoSpace(BackupError, InsufficientStorage):
    """A disk filled up (or would): the repository, the staging area or the restore target."""

    code = "backup_no_space"
