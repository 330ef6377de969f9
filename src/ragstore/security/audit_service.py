"""The audit sub-facade, `store.audit`: verify the log, list its rows, write a signed checkpoint."""

from __future__ import annotations

import builtins
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from sqlalchemy import inspect, make_url, select

from ragstore.config import Settings
from ragstore.db.security_models import AuditLog
from ragstore.db.state import AUDIT_VERIFIED_KEY, write_state
from ragstore.errors import InvalidInput
from ragstore.schemas.audit import AuditCheckpointInfo, AuditEntryInfo, AuditVerification
from ragstore.security.audit import AuditTrail, Outcome, _utc
from ragstore.security.audit_verify import verify_log
from ragstore.security.checkpoints import Checkpoints

__all__ = ["MAX_LIST", "AuditService"]

log = logging.getLogger(__name__)
MAX_LIST = 1000
# Recorded at every start whatever their value: who may call, from where, and where the data is.
START_SETTINGS = (
    "RAGSTORE_ENV",
    "RAGSTORE_AUTH",
    "RAGSTORE_API_HOST",
    "RAGSTORE_API_PORT",
    "DATABASE_URL (effective)",
    "RAGSTORE_VECTOR_BACKEND",
    "RAGSTORE_RATE_LIMIT_DEFAULT",
    "RAGSTORE_AUDIT_CHECKPOINT_SCHEDULE",
    "AUDIT_SIGNING_KEY",
    "API_KEY_SALT",
    "JWT_SECRET",
    "ENCRYPTION_KEY",
)


def _env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return str(alias.choices[0]) if isinstance(alias, AliasChoices) else field.upper()


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
        # When and how the log last verified, for every process (GET /metrics, the alerts that watch it).
        verdict = {"at": self.audit_trail.clock.now().astimezone(UTC).isoformat(), "ok": result.ok}
        write_state(self.audit_trail.db, AUDIT_VERIFIED_KEY, verdict)
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

    def record_start(self, settings: Settings, *, version: str, workers: int = 1) -> None:
        """Record a server start with the settings that matter: those that decide who may do what and where
        the data lives, and every one set explicitly; secrets masked (`Settings.masked`)."""
        shown = settings.masked()
        keep = set(START_SETTINGS) | {_env_name(name) for name in settings.model_fields_set}
        details = {"version": version, "workers": workers, "settings": {k: v for k, v in shown.items() if k in keep}}
        try:
            self.audit_trail.record("server.start", target=version, details=details)
        except Exception:
            log.exception("could not record the server's start in the audit log")

    def checkpoint(self) -> AuditCheckpointInfo:
        """Sign the chain's head now (the scheduler does it on RAGSTORE_AUDIT_CHECKPOINT_SCHEDULE)."""
        made = self.audit_checkpoints.write()
        assert made is not None  # only a conditional write can be skipped
        return made

    def scheduled_checkpoint(self, due: datetime) -> AuditCheckpointInfo | None:
        """The checkpoint of the run due at `due`, or None when another process wrote it already."""
        return self.audit_checkpoints.write(unless_since=_utc(due))

    def checkpoints(self, limit: int = 100_000) -> builtins.list[AuditCheckpointInfo]:
        """The newest `limit` checkpoints, oldest first (a backup carries them)."""
        return self.audit_checkpoints.export(limit)


def verify_copy(settings: Settings, url: str, carried: AuditCheckpointInfo | None) -> AuditVerification:
    """The audit log of a database restored from a backup (`url`), against the checkpoint the backup carries,
    with the configured key. Opens the database only for this."""
    from ragstore.db.engine import Database
    from ragstore.security.checkpoints import signer_from_settings

    db = Database(settings.model_copy(update={"database_url": url}))
    try:
        return verify_log(db, signer_from_settings(settings), [carried] if carried is not None else [])
    finally:
        db.dispose()


def record_beside(
    settings: Settings, action: str, *, target: str = "", outcome: str = Outcome.SUCCESS, **details: Any
) -> None:
    """Record an action taken while no store is open (a restore, a migration) in the configured database's
    audit log; never raises (the action's own outcome is what the caller reports), logs when it cannot."""
    from ragstore.db.engine import Database

    path = make_url(settings.sqlalchemy_url).database if settings.is_sqlite else None
    if settings.is_sqlite and not (path and Path(path).exists()):
        return  # no store here (a restore onto an empty machine that failed): never create an empty database
    try:
        db = Database(settings)
    except Exception:
        log.exception("could not open the database to record %s in the audit log", action)
        return
    try:
        if not inspect(db.engine).has_table("audit_logs"):  # a schema from before revision 0010
            log.info("no audit log in this schema yet: %s on %r is not recorded", action, target)
            return
        AuditTrail(db).record(action, target=target, outcome=outcome, details=details)
    except Exception:
        log.exception("could not record %s on %r in the audit log", action, target)
    finally:
        db.dispose()
