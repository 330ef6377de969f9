"""API keys: `store.keys`. Make, list, revoke, rotate and scope keys, and turn a key's text into a Principal.

Only the key id and the HMAC-SHA256 of the secret under API_KEY_SALT are stored (security/key_format.py
describes the text); comparison is `hmac.compare_digest`. Every change writes its audit row in the same
transaction. `authenticate` is on every request's path, so it is cheap: the text's checksum is checked
before any lookup, a verified key is kept in this process for `CACHE_TTL_S` seconds (found again by a
keyed BLAKE2b of its whole text, so a repeat costs one keyed hash and a dict lookup), and
`last_used_at` is buffered in memory and written every `FLUSH_INTERVAL_S` seconds (and at close), never
per request. A revoke, rotation or grant made in this process drops the cached entry at once; another
process sees it within `CACHE_TTL_S` seconds at most.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.db.security_models import ApiKey, ApiKeyPermission
from ragstore.errors import Conflict, InvalidInput, NotFound, Unauthorized
from ragstore.schemas.security import ApiKeyInfo, CreatedKey, KeyGrant
from ragstore.security.audit import AuditTrail
from ragstore.security.context import current_call
from ragstore.security.key_format import MAX_KEY_LENGTH, new_key, parse_key
from ragstore.security.local_secrets import server_secret
from ragstore.security.principal import ALL_COLLECTIONS, Principal, PrincipalKind, Role

__all__ = ["CACHE_TTL_S", "FLUSH_INTERVAL_S", "INVALID_KEY", "KeyService", "parse_role"]

log = logging.getLogger(__name__)

CACHE_TTL_S = 5.0  # how long another process may still accept a key revoked elsewhere
FLUSH_INTERVAL_S = 5.0
MAX_CACHED = 10_000
MAX_GRANTS = 100
INVALID_KEY = "the API key is not valid"  # one message for unknown, expired, revoked and malformed


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(f"unknown role {value!r}: use read, write, admin or metrics") from None


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _collection(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 128:
        raise InvalidInput('a grant names a collection of 1 to 128 characters, or "*"')
    return name


@dataclass(frozen=True, slots=True)
class _Verified:
    """A key row as `authenticate` needs it, kept for a few seconds."""

    id: int
    secret_hash: str
    expires_at: datetime | None
    principal: Principal
    cached_until: float


@dataclass(frozen=True, slots=True)
class _Seen:
    """A whole key text that passed every check: usable until `good_until` (monotonic), the sooner of the
    cache's bound and the key's expiry, so a repeat needs no wall-clock reading."""

    id: int
    principal: Principal
    good_until: float


class KeyService:
    """The keys sub-facade. Thread-safe: the API calls `authenticate` from many threads at once."""

    def __init__(self, settings: Settings, db: Database, audit_trail: AuditTrail, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.db = db
        self.audit_trail = audit_trail
        self.clock = clock
        self._pepper: bytes | None = None
        self._cache: dict[str, _Verified] = {}  # by key id: the row, for CACHE_TTL_S
        self._verified: dict[bytes, _Seen] = {}  # by the keyed hash of a whole key text that passed every check
        self._used: dict[int, float] = {}  # key row id -> monotonic time of its last use
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flushing = False
        self._last_flush = clock.monotonic()

    # -- the request path -------------------------------------------------------------------------------

    def _hash(self, secret: str) -> str:
        if self._pepper is None:
            self._pepper = server_secret(self.settings, "api_key_salt")
        return hmac.new(self._pepper, secret.encode("ascii"), hashlib.sha256).hexdigest()

    def authenticate(self, text: str) -> Principal:
        """The principal of a key's text; Unauthorized (one message whatever the reason) otherwise."""
        principal = self._check(text, load=True)
        assert principal is not None
        return principal

    def recently_verified(self, raw: bytes) -> Principal | None:
        """The principal of a key text (as the request's bytes) verified in the last seconds, else None (then
        `authenticate_cached`). The hot path of every request with a key: one keyed BLAKE2b and a dict read,
        without decoding the text or any check that the first verification already made."""
        pepper = self._pepper
        if pepper is None or len(raw) != MAX_KEY_LENGTH:
            return None
        hit = self._verified.get(hashlib.blake2b(raw, key=pepper, digest_size=32).digest())
        if hit is None:
            return None
        now_mono = self.clock.monotonic()
        if hit.good_until <= now_mono:
            return None
        self._used[hit.id] = now_mono
        if now_mono - self._last_flush >= FLUSH_INTERVAL_S and not self._flushing:
            self._flushing = True
            threading.Thread(target=self.flush_last_used, name="ragstore-key-usage", daemon=True).start()
        return hit.principal

    def authenticate_cached(self, text: str) -> Principal | None:
        """As `authenticate`, but None where it would have to ask the database (the caller then calls
        `authenticate` on a worker thread, so an event loop never waits on a query)."""
        return self._check(text, load=False)

    def _check(self, text: str, *, load: bool) -> Principal | None:
        if len(text) != MAX_KEY_LENGTH:
            return self._refuse("malformed", None)
        if self._pepper is None:
            self._pepper = server_secret(self.settings, "api_key_salt")
        # A text verified in the last seconds is found by its keyed BLAKE2b (a MAC under the pepper, one C call
        # without OpenSSL's per-call set-up) and a dict lookup: no parsing, no checksum, no second compare.
        # Only the MAC of a text that passed every check is ever a key of this dict.
        seen = hashlib.blake2b(text.encode(), key=self._pepper, digest_size=32).digest()
        now_mono = self.clock.monotonic()
        hit = self._verified.get(seen)
        if hit is None or hit.good_until <= now_mono:
            entry = self._verify(text, now_mono, load=load)
            if entry is None:
                return None
            now = self.clock.now()
            good_until = entry.cached_until
            if entry.expires_at is not None:
                if entry.expires_at <= now:
                    return self._refuse("expired", entry.principal.name)
                good_until = min(good_until, now_mono + (entry.expires_at - now).total_seconds())
            hit = _Seen(entry.id, entry.principal, good_until)
            with self._lock:
                if len(self._verified) >= MAX_CACHED:
                    self._verified.clear()
                self._verified[seen] = hit
        self._used[hit.id] = now_mono
        if now_mono - self._last_flush >= FLUSH_INTERVAL_S and not self._flushing:
            self._flushing = True
            threading.Thread(target=self.flush_last_used, name="ragstore-key-usage", daemon=True).start()
        return hit.principal

    def _verify(self, text: str, now_mono: float, *, load: bool) -> _Verified | None:
        """The row of a well-formed key whose secret matches its stored HMAC (None: not loaded, `load` off)."""
        parsed = parse_key(text)
        if parsed is None:
            return self._refuse("malformed or checksum mismatch", None)
        entry = self._cache.get(parsed.key_id)
        if entry is None or entry.cached_until <= now_mono:
            if not load:
                return None
            entry = self._load(parsed.key_id, now_mono)
            if entry is None:
                return self._refuse("unknown or revoked", parsed.key_id)
        if not hmac.compare_digest(self._hash(parsed.secret), entry.secret_hash):
            return self._refuse("wrong secret", parsed.key_id)
        return entry

    def _refuse(self, reason: str, key_id: str | None) -> NoReturn:
        log.info("API key refused (%s)%s", reason, f" key_id={key_id}" if key_id else "")
        raise Unauthorized(INVALID_KEY)

    def _load(self, key_id: str, now_mono: float) -> _Verified | None:
        with self.db.read() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None)))
            if row is None:
                return None
            permissions = s.scalars(select(ApiKeyPermission).where(ApiKeyPermission.api_key_id == row.id))
            grants = {p.collection: Role(p.role) for p in permissions}
        principal = Principal(PrincipalKind.KEY, key_id, grants, key_id=int(row.id), user_id=row.owner_id)
        entry = _Verified(int(row.id), row.secret_hash, _utc(row.expires_at), principal, now_mono + CACHE_TTL_S)
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[key_id] = entry
        return entry

    def forget(self, key_id: str) -> None:
        """Drop a cached key, so a change to it takes effect in this process at once."""
        with self._lock:
            self._cache.pop(key_id, None)
            for seen in [seen for seen, entry in self._verified.items() if entry.principal.name == key_id]:
                del self._verified[seen]

    def flush_last_used(self) -> int:
        """Write the buffered `last_used_at` times (one statement per key used since the last flush). Flushes
        run one at a time, so `close()` waits for a background one and then writes what is left."""
        with self._flush_lock:
            with self._lock:
                seen, self._used = self._used, {}
                now, now_mono = self.clock.now(), self.clock.monotonic()
                self._last_flush = now_mono
            used = {key: now - timedelta(seconds=now_mono - at) for key, at in seen.items()}
            try:
                if used:
                    self.db.write(lambda s: self._write_used(s, used))
            except Exception:
                log.warning("could not record when %d API keys were last used", len(used), exc_info=True)
            finally:
                self._flushing = False
            return len(used)

    @staticmethod
    def _write_used(s: Session, used: dict[int, datetime]) -> None:
        for key, moment in used.items():
            s.execute(update(ApiKey).where(ApiKey.id == key).values(last_used_at=moment))

    def close(self) -> None:
        self.flush_last_used()

    # -- administration -----------------------------------------------------------------------------------

    def create(
        self,
        name: str,
        role: Role | str,
        collections: Iterable[str] = (ALL_COLLECTIONS,),
        *,
        expires_in: timedelta | float | None = None,
        owner_id: int | None = None,
    ) -> CreatedKey:
        """A new key holding `role` on each of `collections` (`*`: all). Its text is in the answer, once."""
        chosen = parse_role(role) if isinstance(role, str) else role
        names = sorted({_collection(c) for c in collections})
        if not names or len(names) > MAX_GRANTS:
            raise InvalidInput(f"a key needs 1 to {MAX_GRANTS} collections")
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidInput("a key's name has 1 to 200 characters")
        expires_at = self._expiry(expires_in)
        text, parsed = new_key()
        secret_hash = self._hash(parsed.secret)

        def unit(s: Session) -> int:
            row = ApiKey(
                key_id=parsed.key_id,
                secret_hash=secret_hash,
                name=name,
                owner_id=owner_id,
                created_by=current_call().principal.actor[:200],
                created_at=self.clock.now(),
                expires_at=expires_at,
            )
            s.add(row)
            s.flush()
            for collection in names:
                s.add(ApiKeyPermission(api_key_id=row.id, collection=collection, role=chosen.value))
            self.audit_trail.append(
                s,
                "key.create",
                target=f"key:{parsed.key_id}",
                details={"name": name, "role": chosen.value, "collections": names, "expires_at": expires_at},
            )
            return int(row.id)

        key_row = self.db.write(unit)
        return CreatedKey(**self.get(key_row).model_dump(), key=text)

    def _expiry(self, expires_in: timedelta | float | None) -> datetime | None:
        if expires_in is None:
            return None
        delta = expires_in if isinstance(expires_in, timedelta) else timedelta(seconds=float(expires_in))
        if delta <= timedelta(0) or delta > timedelta(days=3650):
            raise InvalidInput("a key expires between a second and ten years from now")
        return self.clock.now() + delta

    def get(self, key: int) -> ApiKeyInfo:
        infos = self._infos(key)
        if not infos:
            raise NotFound(f"no API key has id {key}")
        return infos[0]

    def list(self) -> list[ApiKeyInfo]:
        """Every key, oldest first, with its grants; never a secret or its hash."""
        return self._infos(None)

    def _infos(self, key: int | None) -> builtins.list[ApiKeyInfo]:
        now = self.clock.now()
        with self.db.read() as s:
            query = select(ApiKey).order_by(ApiKey.id)
            grants_query = select(ApiKeyPermission).order_by(ApiKeyPermission.collection)
            if key is not None:
                query = query.where(ApiKey.id == key)
                grants_query = grants_query.where(ApiKeyPermission.api_key_id == key)
            rows = list(s.scalars(query))
            grants: dict[int, builtins.list[KeyGrant]] = {}
            for p in s.scalars(grants_query):
                grants.setdefault(int(p.api_key_id), []).append(
                    KeyGrant.model_validate({"collection": p.collection, "role": p.role})
                )
        infos = []
        for row in rows:
            expires_at = _utc(row.expires_at)
            infos.append(
                ApiKeyInfo(
                    id=int(row.id),
                    key_id=row.key_id,
                    name=row.name,
                    owner_id=row.owner_id,
                    created_by=row.created_by,
                    created_at=row.created_at,
                    expires_at=expires_at,
                    revoked_at=row.revoked_at,
                    last_used_at=row.last_used_at,
                    replaced_by=row.replaced_by,
                    active=row.revoked_at is None and (expires_at is None or expires_at > now),
                    grants=grants.get(int(row.id), []),
                )
            )
        return infos

    def _row(self, s: Session, key: int) -> ApiKey:
        row = s.get(ApiKey, key)
        if row is None:
            raise NotFound(f"no API key has id {key}")
        return row

    def revoke(self, key: int) -> ApiKeyInfo:
        """Revoke a key now (a second revoke changes nothing and records nothing)."""

        def unit(s: Session) -> str:
            row = self._row(s, key)
            if row.revoked_at is None:
                row.revoked_at = self.clock.now()
                self.audit_trail.append(s, "key.revoke", target=f"key:{row.key_id}", details={"name": row.name})
            return row.key_id

        self.forget(self.db.write(unit))
        return self.get(key)

    def rotate(self, key: int) -> CreatedKey:
        """A new key with the same name, owner and grants; the old one expires after RAGSTORE_KEY_ROTATION_GRACE_S."""
        text, parsed = new_key()
        secret_hash = self._hash(parsed.secret)
        now = self.clock.now()
        grace_end = now + timedelta(seconds=self.settings.key_rotation_grace_s)

        def unit(s: Session) -> tuple[int, str]:
            old = self._row(s, key)
            old_expiry = _utc(old.expires_at)
            if old.revoked_at is not None or (old_expiry is not None and old_expiry <= now):
                raise Conflict(f"API key {key} is revoked or expired: create a new key instead of rotating it")
            grants = list(s.scalars(select(ApiKeyPermission).where(ApiKeyPermission.api_key_id == key)))
            new = ApiKey(
                key_id=parsed.key_id,
                secret_hash=secret_hash,
                name=old.name,
                owner_id=old.owner_id,
                created_by=current_call().principal.actor[:200],
                rate_limit=old.rate_limit,
                created_at=now,
                expires_at=old.expires_at,
            )
            s.add(new)
            s.flush()
            for grant in grants:
                s.add(ApiKeyPermission(api_key_id=new.id, collection=grant.collection, role=grant.role))
            old.replaced_by = int(new.id)
            old.expires_at = grace_end if old_expiry is None else min(old_expiry, grace_end)
            self.audit_trail.append(
                s,
                "key.rotate",
                target=f"key:{old.key_id}",
                details={"new_key": parsed.key_id, "old_expires_at": old.expires_at},
            )
            return int(new.id), old.key_id

        new_id, old_key_id = self.db.write(unit)
        self.forget(old_key_id)
        return CreatedKey(**self.get(new_id).model_dump(), key=text)

    def grant(self, key: int, collection: str, role: Role | str) -> ApiKeyInfo:
        """Give a key `role` on `collection` (replacing the role it held there)."""
        chosen = parse_role(role) if isinstance(role, str) else role
        name = _collection(collection)

        def unit(s: Session) -> str:
            row = self._row(s, key)
            held = s.scalar(
                select(ApiKeyPermission).where(ApiKeyPermission.api_key_id == key, ApiKeyPermission.collection == name)
            )
            if held is None:
                count = len(list(s.scalars(select(ApiKeyPermission.id).where(ApiKeyPermission.api_key_id == key))))
                if count >= MAX_GRANTS:
                    raise InvalidInput(f"a key holds at most {MAX_GRANTS} grants")
                s.add(ApiKeyPermission(api_key_id=key, collection=name, role=chosen.value))
            else:
                held.role = chosen.value
            self.audit_trail.append(
                s, "key.grant", target=f"key:{row.key_id}", details={"collection": name, "role": chosen.value}
            )
            return row.key_id

        self.forget(self.db.write(unit))
        return self.get(key)

    def deny(self, key: int, collection: str) -> ApiKeyInfo:
        """Take away what a key held on `collection`; NotFound when it held nothing there."""
        name = _collection(collection)

        def unit(s: Session) -> str:
            row = self._row(s, key)
            held = s.scalar(
                select(ApiKeyPermission).where(ApiKeyPermission.api_key_id == key, ApiKeyPermission.collection == name)
            )
            if held is None:
                raise NotFound(f"API key {key} holds no grant on {name!r}")
            s.delete(held)
            self.audit_trail.append(s, "key.deny", target=f"key:{row.key_id}", details={"collection": name})
            return row.key_id

        self.forget(self.db.write(unit))
        return self.get(key)

    def has_active_admin(self) -> bool:
        """Whether some key that is neither revoked nor expired holds admin on every collection."""
        return any(k.active and KeyGrant(collection=ALL_COLLECTIONS, role="admin") in k.grants for k in self.list())
