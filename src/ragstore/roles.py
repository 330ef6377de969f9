"""The roles a principal may hold. Declared here, below every store, because the application records'
declarations (`declarations/record_spec.py`) name the role each action needs; the rule of what a role
allows is `security/principal.py`'s."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Role"]


class Role(StrEnum):
    READ = "read"  # search, list, get
    WRITE = "write"  # read, plus ingest, delete documents, feedback
    ADMIN = "admin"  # everything: /admin/*, keys, users, backups, restores, repairs, collection create and delete
    METRICS = "metrics"  # /metrics only
