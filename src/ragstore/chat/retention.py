"""Retention and erasure (issue 18): purging soft-deleted and expired conversations for good, and erasing
everything of one user. Both are recorded in the audit log, without the content they remove.

SKELETON: the foundation commit fixes the signatures; the implementation lands with the retention work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.engine import Database
from ragstore.schemas.chat import ErasureReport, PurgeReport
from ragstore.security.audit import AuditTrail

__all__ = ["ChatRetention"]


@dataclass(slots=True)
class ChatRetention:
    db: Database
    audit_trail: AuditTrail
    clock: Clock = SYSTEM_CLOCK

    def purge(self, older_than: timedelta | None = None, *, dry_run: bool = False) -> PurgeReport:
        raise NotImplementedError("purge lands with issue 18's retention work")

    def erase_user(self, user: int | str) -> ErasureReport:
        raise NotImplementedError("erasure lands with issue 18's retention work")
