"""Sessions: one `sessions` row per refresh token or admin page cookie, and a short cache of their state.

A row holds only the HMAC of its token (security/tokens.py), its expiry, when it was revoked, and the user
agent and client address it was opened from. A refresh rotates: the old row is revoked and a new one made,
so a revoked row that is presented again is the sign of a stolen token (security/login.py acts on it).
Revoked rows are therefore kept until their own expiry, and only then deleted by the scheduled cleanup
(`delete_expired`): until then a replayed token is still recognised.

Every request with an access token or a cookie asks whether its session still holds. The answer is cached
in-process for `SESSION_RECHECK_S` seconds (of the injected clock), so a logout, a disabled user or a
changed password stops a token in another server process within that bound, and at once in this one
(`forget`), while a busy client costs one indexed read per session every few seconds, not one per request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cachetools import TTLCache
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.engine import Database
from ragstore.db.security_models import User, UserSession
from ragstore.security.tokens import MAX_TOKEN_CHARS, TokenKind, TokenSigner, new_token

__all__ = ["SESSION_RECHECK_S", "SessionState", "SessionStore", "as_utc"]

SESSION_RECHECK_S = 5.0  # the documented bound: a revoked session or disabled user stops within this
CACHE_ENTRIES = 10_000
DELETE_BATCH = 1000


def as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive (they were written in UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class SessionState:
    """What a request needs to know about its session: whose it is and whether it still holds."""

    session_id: int
    user_id: int
    email: str
    role: str
    live: bool  # not revoked, not expired, and its user active


class SessionStore:
    def __init__(self, db: Database, signer: TokenSigner, clock: Clock = SYSTEM_CLOCK) -> None:
        self.db = db
        self.signer = signer
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: TTLCache[tuple[str, object], SessionState | None] = TTLCache(
            maxsize=CACHE_ENTRIES, ttl=SESSION_RECHECK_S, timer=clock.monotonic
        )

    # -- writes, inside the caller's transaction -------------------------------------------------------------

    def open(
        self, session: Session, *, user_id: int, kind: TokenKind, ttl_s: int, user_agent: str, client_address: str
    ) -> tuple[str, UserSession]:
        """A new session row and its token (returned once, never stored)."""
        token = new_token()
        now = self.clock.now()
        row = UserSession(
            user_id=user_id,
            token_hash=self.signer.token_hash(kind, token),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
            last_used_at=now,
            user_agent=user_agent[:512],
            client_address=client_address[:64],
        )
        session.add(row)
        session.flush()
        return token, row

    def find(self, session: Session, kind: TokenKind, token: str, *, for_update: bool = False) -> UserSession | None:
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        query = select(UserSession).where(UserSession.token_hash == self.signer.token_hash(kind, token))
        return session.scalars(query.with_for_update() if for_update else query).first()

    def revoke(self, session: Session, row: UserSession) -> bool:
        """Revoke one session; False when another transaction revoked it first (a racing refresh)."""
        done = session.execute(
            update(UserSession)
            .where(UserSession.id == row.id, UserSession.revoked_at.is_(None))
            .values(revoked_at=self.clock.now())
        )
        return bool(getattr(done, "rowcount", 0))

    def revoke_all(self, session: Session, user_id: int) -> int:
        """Revoke every live session of a user (password changed, user disabled, a refresh token replayed)."""
        done = session.execute(
            update(UserSession)
            .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
            .values(revoked_at=self.clock.now())
        )
        return int(getattr(done, "rowcount", 0) or 0)

    def is_expired(self, row: UserSession) -> bool:
        return as_utc(row.expires_at) <= self.clock.now()

    def forget(self, user_id: int | None = None) -> None:
        """Drop the cached answers about a user's sessions (every answer without `user_id`): this process sees
        a revocation it made at once. A session that was unknown when asked is cached as None and stays so."""
        with self._lock:
            if user_id is None:
                self._cache.clear()
                return
            for key in [k for k, state in self._cache.items() if state is not None and state.user_id == user_id]:
                self._cache.pop(key, None)

    # -- the per-request question, cached -----------------------------------------------------------------

    def state_by_id(self, session_id: int) -> SessionState | None:
        return self._cached(("id", session_id), UserSession.id == session_id)

    def state_by_cookie(self, token: str) -> SessionState | None:
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        token_hash = self.signer.token_hash(TokenKind.COOKIE, token)
        return self._cached(("cookie", token_hash), UserSession.token_hash == token_hash)

    def _cached(self, key: tuple[str, object], where: object) -> SessionState | None:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        state = self._read(where)
        with self._lock:
            self._cache[key] = state
        return state

    def _read(self, where: object) -> SessionState | None:
        with self.db.read() as session:
            found = session.execute(
                select(UserSession.id, UserSession.expires_at, UserSession.revoked_at, User.id, User.email)
                .add_columns(User.role, User.active)
                .join(User, User.id == UserSession.user_id)
                .where(where)  # type: ignore[arg-type]
            ).first()
        if found is None:
            return None
        session_id, expires_at, revoked_at, user_id, email, role, active = found
        live = revoked_at is None and as_utc(expires_at) > self.clock.now() and bool(active)
        return SessionState(int(session_id), int(user_id), str(email), str(role), live)

    # -- the scheduled cleanup ----------------------------------------------------------------------------

    def delete_expired(self) -> int:
        """Delete sessions past their expiry (revoked ones included), a batch per transaction."""
        now = self.clock.now()
        deleted = 0
        while True:

            def batch(session: Session) -> int:
                ids = list(
                    session.scalars(select(UserSession.id).where(UserSession.expires_at <= now).limit(DELETE_BATCH))
                )
                if ids:
                    session.execute(delete(UserSession).where(UserSession.id.in_(ids)))
                return len(ids)

            count = self.db.write(batch)
            deleted += count
            if count < DELETE_BATCH:
                return deleted
