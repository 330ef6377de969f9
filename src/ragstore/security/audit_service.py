"""The audit sub-facade, `store.audit`: verify the log, list its rows, write a signed checkpoint."""

from __future__ import annotations

import builtins
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from ragstore.db.security_models import AuditLog
from ragstore.errors import InvalidInput
from ragstore.schemas.audit import AuditCheckpointInfo, AuditEntryInfo, AuditVerification
from ragstore.security.audit import AuditTrail, _utc
from ragstore.security.audit_verify import verify_log
from ragstore.security.checkpoints import Checkpoints

__all__ = ["MAX_LIST", "AuditService"]

log = logging.getLogger(__name__)
MAX_LIST = 1000


@dataclass(kw_only=True, slots=True)
class AuditService:
    """Its fields are the components it works with (`wiring.build`)."""

    audit_trail: AuditTrail
    audit_checkpoints: Checkpoints

    def verify(self) -> AuditVerification:
        """Walk the whole chain and every checkpoint; a broken log is logged at error level (never repaired)."""
        result = verify_log(self.audit_trail.db, self.audit_checkpoints.signer)
        if not result.ok:
            log.error(
                "the audit log does not verify at sequence %s (%s): %s",
                result.first_bad_sequence,
                result.problem,
                result.reason,
            )
        return result

    def list(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditEntryInfo]:
        """The newest rows first, filtered by exact actor and action (`key.*`: every action of a kind)."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be from 1 to {MAX_LIST}, got {limit}")
        query = select(AuditLog)
        if actor:
            query = query.where(AuditLog.actor == actor[:200])
        if action:
            if action.endswith(".*"):
                query = query.where(AuditLog.action.startswith(action[:-1][:64], autoescape=True))
            else:
                query = query.where(AuditLog.action == action[:64])
        if since is not None:
            query = query.where(AuditLog.created_at >= _utc(since))
        with self.audit_trail.db.read() as s:
            rows = s.scalars(query.order_by(AuditLog.sequence.desc()).limit(limit)).all()
            return [AuditEntryInfo.model_validate(r) for r in rows]

    def checkpoint(self) -> AuditCheckpointInfo:
        """Sign the chain's head now (the scheduler does it on RAGSTORE_AUDIT_CHECKPOINT_SCHEDULE)."""
        return self.audit_checkpoints.write()

    def checkpoints(self, limit: int = 100_000) -> builtins.list[AuditCheckpointInfo]:
        """The newest `limit` checkpoints, oldest first (a backup carries them)."""
        return self.audit_checkpoints.export(limit)
