"""Signed checkpoints of the audit chain: "at this time the chain had this head at this sequence".

The hash chain alone proves that the rows agree with each other, not that they are the rows that were
written: someone with write access to the database files can cut rows off the tail, or edit a row and
recompute every hash after it. A checkpoint closes both holes for the rows it covers. It is signed with an
Ed25519 key derived from AUDIT_SIGNING_KEY (a 32-byte seed, `server_secret`), which lives outside the
database, and names the signature of the checkpoint before it, so checkpoints form a chain of their own.
Verification trusts only the configured key's public key: a checkpoint signed by any other key (a forger
who made their own key pair) is reported, not believed.

Checkpoints are written on a schedule even when nothing happened (a quiet hour is a statement too), and
copied into every backup, so a log restored from a backup can be held against them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.db.security_models import AuditCheckpoint, AuditLog
from ragstore.schemas.audit import AuditCheckpointInfo
from ragstore.security.audit import GENESIS_HASH, lock_chain
from ragstore.security.local_secrets import server_secret

__all__ = ["CheckpointSigner", "Checkpoints", "SignedCheckpoint", "checkpoint_message", "signer_from_settings"]


def checkpoint_message(*, sequence: int, head_hash: str, created_at: datetime, previous_signature: str) -> bytes:
    """The bytes a checkpoint's signature covers: canonical JSON (sorted keys, no spaces, UTC microseconds)."""
    moment = created_at.replace(tzinfo=UTC) if created_at.tzinfo is None else created_at.astimezone(UTC)
    return json.dumps(
        {
            "sequence": sequence,
            "head_hash": head_hash,
            "created_at": moment.isoformat(timespec="microseconds"),
            "previous_signature": previous_signature,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


class SignedCheckpoint(Protocol):
    """What a signature is checked over: a row, a stored checkpoint, or one copied into a backup."""

    @property
    def sequence(self) -> int: ...
    @property
    def head_hash(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def previous_signature(self) -> str: ...
    @property
    def signature(self) -> str: ...


@dataclass(frozen=True, slots=True)
class CheckpointSigner:
    """The Ed25519 key pair of the audit log (the private half never leaves this object)."""

    private_key: Ed25519PrivateKey

    @classmethod
    def from_seed(cls, seed: bytes) -> CheckpointSigner:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def public_hex(self) -> str:
        return self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def sign(self, message: bytes) -> str:
        return self.private_key.sign(message).hex()

    def verifies(self, row: SignedCheckpoint) -> bool:
        """Whether `row` is signed by THIS key (the public key the row names is not trusted)."""
        message = checkpoint_message(
            sequence=int(row.sequence),
            head_hash=row.head_hash,
            created_at=row.created_at,
            previous_signature=row.previous_signature,
        )
        try:
            self.public_key.verify(bytes.fromhex(row.signature), message)
        except (InvalidSignature, ValueError):
            return False
        return True


def signer_from_settings(settings: Settings) -> CheckpointSigner:
    """The configured key (AUDIT_SIGNING_KEY), or the one generated once into the data dir's secrets."""
    return CheckpointSigner.from_seed(server_secret(settings, "audit_signing_key"))


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def info(row: AuditCheckpoint) -> AuditCheckpointInfo:
    return AuditCheckpointInfo.model_validate(row)


class Checkpoints:
    """Writes and reads the signed checkpoints of one store's audit log."""

    def __init__(
        self, db: Database, signer: CheckpointSigner | Callable[[], CheckpointSigner], clock: Clock = SYSTEM_CLOCK
    ) -> None:
        """`signer` may be a callable: the key is then read (or generated) when first needed, not when a
        store opens (a store opened to list collections needs no signing key)."""
        self.db = db
        self._signer = signer
        self.clock = clock

    @property
    def signer(self) -> CheckpointSigner:
        if not isinstance(self._signer, CheckpointSigner):
            self._signer = self._signer()
        return self._signer

    def write(self, *, unless_since: datetime | None = None) -> AuditCheckpointInfo | None:
        """Sign the chain's head now. Under the append lock, so the head cannot move while it is read, and two
        writers cannot both chain to the same previous checkpoint.

        `unless_since`: write nothing (None) when a checkpoint was already written at or after that time, so
        that several server processes running the same schedule write one checkpoint per run between them."""

        def unit(s: Session) -> AuditCheckpointInfo | None:
            lock_chain(s)
            head = s.execute(
                select(AuditLog.sequence, AuditLog.row_hash).order_by(AuditLog.sequence.desc()).limit(1)
            ).first()
            sequence, head_hash = (int(head[0]), str(head[1])) if head else (0, GENESIS_HASH)
            last = s.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)).first()
            if last is not None and unless_since is not None and _aware(last.created_at) >= unless_since:
                return None
            previous_signature = last.signature if last is not None else ""
            created_at = self.clock.now().astimezone(UTC)
            message = checkpoint_message(
                sequence=sequence, head_hash=head_hash, created_at=created_at, previous_signature=previous_signature
            )
            row = AuditCheckpoint(
                sequence=sequence,
                head_hash=head_hash,
                created_at=created_at,
                previous_signature=previous_signature,
                public_key=self.signer.public_hex,
                signature=self.signer.sign(message),
            )
            s.add(row)
            s.flush()
            return info(row)

        return self.db.write(unit)

    def latest(self) -> AuditCheckpointInfo | None:
        with self.db.read() as s:
            row = s.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)).first()
            return None if row is None else info(row)

    def export(self, limit: int = 100_000) -> list[AuditCheckpointInfo]:
        """The newest `limit` checkpoints, oldest first (what a backup carries)."""
        with self.db.read() as s:
            rows = list(s.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(limit)))
            return [info(r) for r in reversed(rows)]
