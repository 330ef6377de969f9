"""The secrets ragstore keeps for its users (`store.secrets`): AES-256-GCM under ENCRYPTION_KEY.

What is stored: a fresh 96-bit nonce per write and the ciphertext with its tag; the associated data binds
each ciphertext to its (scope, name), so a row copied over another row's place, or renamed, fails to
decrypt instead of handing one owner's credential to another. `key_id` (16 hex digits of SHA-256 of the
key) names the key that sealed a row, so rotation knows what is left to do and an unknown key gives an
error that says which setting is missing rather than a bare "decryption failed".

Rotation: set the new key as ENCRYPTION_KEY and the old one as ENCRYPTION_KEY_PREVIOUS, restart, then run
`ragstore secrets rotate`. Reads accept both keys meanwhile; `rotate()` re-encrypts in batches of one
transaction each, only rows still under the previous key, so a crash or a second run costs nothing and
finishes the rest. Once it reports nothing left, ENCRYPTION_KEY_PREVIOUS can go.

Scopes in use: `collection:<name>` (per-collection OpenAI keys) and `mcp:<connection id>` (MCP connection
credentials); `scope_of` makes them, so every caller spells them alike.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.db.security_models import EncryptedSecret
from ragstore.errors import ConfigError, InvalidInput, NotFound, OperationFailed
from ragstore.schemas.secrets import RotationReport, SecretInfo
from ragstore.secrets_mask import register
from ragstore.security.audit import AuditTrail
from ragstore.security.local_secrets import decode_secret, register_key, server_secret
from ragstore.valid_text import text_problem

__all__ = [
    "MAX_NAME_CHARS",
    "MAX_SCOPE_CHARS",
    "MAX_VALUE_BYTES",
    "NONCE_BYTES",
    "KeyRing",
    "SealingKey",
    "SecretVault",
    "key_id_of",
    "scope_of",
]

T = TypeVar("T")

NONCE_BYTES = 12  # 96 bits: what GCM is made for; random per write (2^-32 collision odds after 2^32 writes)
MAX_SCOPE_CHARS = 128  # the columns' widths (db/security_models.py)
MAX_NAME_CHARS = 128
MAX_VALUE_BYTES = 64 * 1024  # a credential, a JSON of one connection's settings; never a document
ROTATE_BATCH = 200
_AAD_PREFIX = b"ragstore.encrypted_secrets.v1"


def key_id_of(key: bytes) -> str:
    """The public name of a key: 16 hex digits of its SHA-256 (64 bits: tells keys apart, reveals nothing)."""
    return hashlib.sha256(key).hexdigest()[:16]


def scope_of(kind: str, owner: str | int) -> str:
    """The scope of a secret's owner, e.g. `scope_of("collection", "docs")` -> `collection:docs`."""
    return f"{kind}:{owner}"


def _associated_data(scope: str, name: str) -> bytes:
    """JSON of (scope, name): unambiguous whatever characters they hold (`a:b`/`c` differs from `a`/`b:c`)."""
    return _AAD_PREFIX + json.dumps([scope, name], ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class SealingKey:
    key_id: str
    aead: AESGCM

    @classmethod
    def of(cls, key: bytes) -> SealingKey:
        return cls(key_id=key_id_of(key), aead=AESGCM(key))


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The current key (seals every write) and the previous one (still opens rows during a rotation)."""

    current: SealingKey
    previous: SealingKey | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        current = server_secret(settings, "encryption_key")
        previous = None
        configured = settings.encryption_key_previous
        if configured is not None and configured.get_secret_value().strip():
            previous = register_key(decode_secret(configured.get_secret_value(), "ENCRYPTION_KEY_PREVIOUS"))
        return cls.of(current, previous)

    @classmethod
    def of(cls, current: bytes, previous: bytes | None = None) -> KeyRing:
        if previous is not None and previous == current:
            previous = None  # the rotation is over: nothing to tell apart
        return cls(SealingKey.of(current), SealingKey.of(previous) if previous is not None else None)

    def for_id(self, key_id: str) -> SealingKey | None:
        for key in (self.current, self.previous):
            if key is not None and key.key_id == key_id:
                return key
        return None


class SecretVault:
    """`store.secrets`: put, get, delete and list secrets by (scope, name), and rotate the key.

    Every method that changes something takes an optional `session`: given, it works inside the caller's
    transaction (a collection deleted with its secrets, an MCP connection stored with its credentials, all
    or nothing); without one it runs its own. Each change is audited in the same transaction, never with
    the value.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        audit_trail: AuditTrail,
        clock: Clock = SYSTEM_CLOCK,
        keys: KeyRing | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.audit_trail = audit_trail
        self.clock = clock
        self._keys = keys
        self._lock = threading.Lock()

    @property
    def keys(self) -> KeyRing:
        """Read on first use, not when the store opens: a store that keeps no secrets needs no key, and a
        wrong ENCRYPTION_KEY is reported by the call that needs it, naming the setting."""
        with self._lock:
            if self._keys is None:
                self._keys = KeyRing.from_settings(self.settings)
            return self._keys

    # -- writing -----------------------------------------------------------------------------------------

    def put(self, scope: str, name: str, value: str, *, session: Session | None = None) -> SecretInfo:
        """Store (or replace) a secret, sealed by the current key under a fresh nonce."""
        scope, name = _checked_ref(scope, name)
        plaintext = _checked_value(value)
        register(value)  # from now on this process masks it wherever it would appear
        key = self.keys.current

        def unit(s: Session) -> SecretInfo:
            nonce = os.urandom(NONCE_BYTES)
            sealed = key.aead.encrypt(nonce, plaintext, _associated_data(scope, name))
            now = self.clock.now()
            row, created = self._row_for(s, scope, name, now)
            row.key_id, row.nonce, row.ciphertext, row.updated_at = key.key_id, nonce, sealed, now
            s.flush()
            self.audit_trail.append(
                s, "secret.set", target=f"{scope}/{name}", details={"key_id": key.key_id, "created": created}
            )
            return SecretInfo.model_validate(row)

        return self._in(session, unit)

    @staticmethod
    def _row_for(s: Session, scope: str, name: str, now: datetime) -> tuple[EncryptedSecret, bool]:
        """The row of (scope, name), made if there is none yet (and whether it was made).

        Two first writes of one name can race on PostgreSQL (SQLite serialises writers): the loser's insert
        runs in a savepoint, so its unique violation undoes only the insert, and it updates the winner's row.
        """
        query = select(EncryptedSecret).where(EncryptedSecret.scope == scope, EncryptedSecret.name == name)
        row = s.execute(query).scalar_one_or_none()
        if row is not None:
            return row, False
        fresh = EncryptedSecret(scope=scope, name=name, key_id="", nonce=b"", ciphertext=b"", created_at=now)
        if s.get_bind().dialect.name != "postgresql":
            s.add(fresh)
            return fresh, True
        try:
            with s.begin_nested():
                s.add(fresh)
                s.flush()
        except IntegrityError:
            return s.execute(query).scalar_one(), False
        return fresh, True

    def delete(self, scope: str, name: str, *, session: Session | None = None) -> None:
        """Remove a secret; NotFound when there is none (nothing to audit, nothing changed)."""
        scope, name = _checked_ref(scope, name)

        def unit(s: Session) -> None:
            gone = s.execute(
                delete(EncryptedSecret).where(EncryptedSecret.scope == scope, EncryptedSecret.name == name)
            )
            if not getattr(gone, "rowcount", 0):
                raise NotFound(f"no secret {name!r} in scope {scope!r}")
            self.audit_trail.append(s, "secret.delete", target=f"{scope}/{name}")

        self._in(session, unit)

    def delete_scope(self, scope: str, *, session: Session | None = None) -> int:
        """Remove every secret of one owner (a collection or a connection being deleted); how many went."""
        scope, _ = _checked_ref(scope, "-")

        def unit(s: Session) -> int:
            gone = int(getattr(s.execute(delete(EncryptedSecret).where(EncryptedSecret.scope == scope)), "rowcount", 0))
            if gone:
                self.audit_trail.append(s, "secret.delete", target=f"{scope}/*", details={"count": gone})
            return gone

        return self._in(session, unit)

    # -- reading -----------------------------------------------------------------------------------------

    def get(self, scope: str, name: str, *, session: Session | None = None) -> str:
        """The secret's value; NotFound when absent, ConfigError when sealed by a key ragstore was not given."""
        found = self.find(scope, name, session=session)
        if found is None:
            raise NotFound(f"no secret {name!r} in scope {scope!r}")
        return found

    def find(self, scope: str, name: str, *, session: Session | None = None) -> str | None:
        """The secret's value, or None when there is none (for optional credentials)."""
        scope, name = _checked_ref(scope, name)
        query = select(EncryptedSecret).where(EncryptedSecret.scope == scope, EncryptedSecret.name == name)
        if session is not None:
            row = session.execute(query).scalar_one_or_none()
        else:
            with self.db.read() as s:
                row = s.execute(query).scalar_one_or_none()
        if row is None:
            return None
        value = self._open(row).decode("utf-8")
        register(value)
        return value

    def list(self, scope: str | None = None) -> builtins.list[SecretInfo]:
        """Names and key ids (never values), by scope then name."""
        query = select(EncryptedSecret).order_by(EncryptedSecret.scope, EncryptedSecret.name)
        if scope is not None:
            scope, _ = _checked_ref(scope, "-")
            query = query.where(EncryptedSecret.scope == scope)
        with self.db.read() as s:
            return [SecretInfo.model_validate(row) for row in s.execute(query).scalars()]

    # -- rotation ----------------------------------------------------------------------------------------

    def rotate(
        self, *, batch_size: int = ROTATE_BATCH, after_batch: Callable[[int], None] | None = None
    ) -> RotationReport:
        """Re-encrypt every row sealed by ENCRYPTION_KEY_PREVIOUS under ENCRYPTION_KEY, `batch_size` rows per
        transaction (`after_batch(rotated so far)` after each commit, for progress).

        Idempotent and resumable: a row already under the current key is skipped, and a row is rewritten
        only if it still holds the ciphertext that was read (a concurrent `put` wins). Rows under a key that
        is neither are left alone and named in the report, so nothing is lost while the operator finds it.
        """
        if not 1 <= batch_size <= 10_000:
            raise InvalidInput(f"batch_size must be between 1 and 10000 (got {batch_size})")
        keys = self.keys
        current, previous = keys.current, keys.previous
        rotated = batches = 0
        unreadable: builtins.list[str] = []
        last_id = 0
        while True:
            with self.db.read() as s:
                rows = builtins.list(
                    s.execute(
                        select(EncryptedSecret)
                        .where(EncryptedSecret.id > last_id, EncryptedSecret.key_id != current.key_id)
                        .order_by(EncryptedSecret.id)
                        .limit(batch_size)
                    ).scalars()
                )
            if not rows:
                break
            last_id = rows[-1].id
            batch: builtins.list[tuple[EncryptedSecret, bytes]] = []
            for row in rows:
                if previous is None or row.key_id != previous.key_id:
                    unreadable.append(f"{row.scope}/{row.name}")
                    continue
                try:
                    batch.append((row, self._open(row)))
                except OperationFailed:  # altered or moved: it cannot be rotated, and the rest still can
                    unreadable.append(f"{row.scope}/{row.name}")
            if not batch:
                continue
            done = self.db.write(functools.partial(self._reseal, batch=batch, current=current, previous=previous))
            rotated += done
            batches += 1
            if after_batch is not None:
                after_batch(rotated)
        already_current = self._count_under(current.key_id)
        if batches == 0:
            self.audit_trail.record(
                "secrets.rotate",
                details=_rotation_details(current, previous, 0, already_current, unreadable),
            )
        return RotationReport(
            key_id=current.key_id,
            previous_key_id=previous.key_id if previous else None,
            rotated=rotated,
            already_current=already_current - rotated,
            unreadable=unreadable,
            batches=batches,
        )

    def _reseal(
        self,
        s: Session,
        *,
        batch: builtins.list[tuple[EncryptedSecret, bytes]],
        current: SealingKey,
        previous: SealingKey | None,
    ) -> int:
        done = 0
        now = self.clock.now()
        for row, plaintext in batch:
            nonce = os.urandom(NONCE_BYTES)
            sealed = current.aead.encrypt(nonce, plaintext, _associated_data(row.scope, row.name))
            result = s.execute(
                update(EncryptedSecret)
                .where(
                    EncryptedSecret.id == row.id,
                    EncryptedSecret.key_id == row.key_id,
                    EncryptedSecret.nonce == row.nonce,
                )
                .values(key_id=current.key_id, nonce=nonce, ciphertext=sealed, updated_at=now)
            )
            done += int(getattr(result, "rowcount", 0))
        self.audit_trail.append(s, "secrets.rotate", details=_rotation_details(current, previous, done, None, []))
        return done

    def _count_under(self, key_id: str) -> int:
        with self.db.read() as s:
            return int(
                s.execute(
                    select(func.count()).select_from(EncryptedSecret).where(EncryptedSecret.key_id == key_id)
                ).scalar_one()
            )

    # -- helpers -----------------------------------------------------------------------------------------

    def _open(self, row: EncryptedSecret) -> bytes:
        keys = self.keys
        key = keys.for_id(row.key_id)
        if key is None:
            previous = keys.previous.key_id if keys.previous else "not set"
            raise ConfigError(
                f"the secret {row.name!r} in scope {row.scope!r} was sealed by key {row.key_id}, which is neither "
                f"ENCRYPTION_KEY ({keys.current.key_id}) nor ENCRYPTION_KEY_PREVIOUS ({previous}): set "
                "ENCRYPTION_KEY_PREVIOUS to the key it was sealed with, then run `ragstore secrets rotate`"
            )
        try:
            return key.aead.decrypt(bytes(row.nonce), bytes(row.ciphertext), _associated_data(row.scope, row.name))
        except InvalidTag:
            raise OperationFailed(
                f"the secret {row.name!r} in scope {row.scope!r} fails its integrity check: its row was altered "
                "or moved from another scope or name; store it again"
            ) from None

    def _in(self, session: Session | None, unit: Callable[[Session], T]) -> T:
        return unit(session) if session is not None else self.db.write(unit)


def _rotation_details(
    current: SealingKey, previous: SealingKey | None, rotated: int, already_current: int | None, unreadable: list[str]
) -> dict[str, object]:
    details: dict[str, object] = {
        "key_id": current.key_id,
        "previous_key_id": previous.key_id if previous else None,
        "rotated": rotated,
    }
    if already_current is not None:
        details["already_current"] = already_current
    if unreadable:
        details["unreadable"] = len(unreadable)
    return details


def _checked_ref(scope: str, name: str) -> tuple[str, str]:
    """A scope and a name ragstore can store and show: 1-128 characters of valid text, no control characters."""
    for what, value, limit in (("scope", scope, MAX_SCOPE_CHARS), ("name", name, MAX_NAME_CHARS)):
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"a secret's {what} must not be empty")
        if len(value) > limit:
            raise InvalidInput(f"a secret's {what} must be at most {limit} characters (got {len(value)})")
        problem = text_problem(value)
        if problem is not None or any(ord(c) < 32 or ord(c) == 127 for c in value) or value != value.strip():
            raise InvalidInput(
                f"a secret's {what} must be printable text without control characters or surrounding spaces"
            )
    return scope, name


def _checked_value(value: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise InvalidInput("a secret's value must not be empty (delete the secret instead)")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("a secret's value must be valid Unicode text") from None
    if len(data) > MAX_VALUE_BYTES:
        raise InvalidInput(f"a secret's value must be at most {MAX_VALUE_BYTES} bytes (got {len(data)})")
    return data
