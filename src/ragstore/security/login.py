"""Logging in, refreshing and logging out: passwords checked, sessions opened and rotated, failures slowed.

- An unknown e-mail and a wrong password answer the same 401 with the same message, after the same work
  (an unknown account verifies against a dummy argon2id hash), so neither the answer nor its timing tells
  a guesser which accounts exist. A disabled account answers the same too.
- Failed logins for one account are slowed down: after `FREE_ATTEMPTS` failures in a row the account is
  locked for `LOCK_BASE_S` seconds, doubling with each further failure up to `LOCK_MAX_S`, kept in
  `users.failed_logins` / `users.locked_until` (so every server process sees it) against the injected
  clock. While locked, a login answers 429 with Retry-After without checking the password. Unknown e-mails
  get the same treatment from an in-process table, so a lockout does not reveal an account either. A success
  clears the count. Failures and successes are audited (`login.failed`, `login.success`), never the password.
- A refresh rotates its token; presenting a token that was already rotated or logged out is treated as
  theft: every session of that user is revoked and `session.reuse` is audited.
The per-client-address limit on the login route is the rate limiter's (RAGSTORE_RATE_LIMIT_LOGIN).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.engine import Database
from ragstore.db.security_models import User, UserSession
from ragstore.errors import TooManyRequests, Unauthorized
from ragstore.schemas.users import LoginResult, UserInfo
from ragstore.security.audit import AuditTrail, Outcome
from ragstore.security.passwords import MAX_PASSWORD_CHARS, PasswordHashing
from ragstore.security.sessions import SessionStore, as_utc
from ragstore.security.tokens import TokenKind, TokenSigner
from ragstore.security.user_lookup import normal_email
from ragstore.valid_text import text_problem

__all__ = ["BAD_CREDENTIALS", "FREE_ATTEMPTS", "LOCK_BASE_S", "LOCK_MAX_S", "CookieLogin", "Logins", "lock_seconds"]

BAD_CREDENTIALS = "the e-mail address or the password is wrong"
FREE_ATTEMPTS = 5
LOCK_BASE_S = 2.0
LOCK_MAX_S = 900.0
UNKNOWN_ACCOUNTS_KEPT = 10_000
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")


def lock_seconds(failures: int) -> float:
    """How long an account stays locked after its `failures`-th failure in a row (0: not yet)."""
    if failures < FREE_ATTEMPTS:
        return 0.0
    return float(min(LOCK_MAX_S, LOCK_BASE_S * 2 ** min(failures - FREE_ATTEMPTS, 20)))


def shown_email(email: str) -> str:
    """What the audit log names for an attempted login: the e-mail if it looks like one, else nothing (a
    password typed into the e-mail field must not end up in the log)."""
    return email if EMAIL.fullmatch(email) else "(not an e-mail address)"


@dataclass(frozen=True, slots=True)
class CookieLogin:
    """An admin page login: the cookie's value (shown once, in Set-Cookie) and how long it lasts."""

    token: str
    max_age_s: int
    user: UserInfo


class Logins:
    def __init__(
        self,
        db: Database,
        sessions: SessionStore,
        signer: TokenSigner,
        audit: AuditTrail,
        hashing: PasswordHashing,
        *,
        access_ttl_s: int,
        refresh_ttl_s: int,
        cookie_ttl_s: int,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.sessions = sessions
        self.signer = signer
        self.audit = audit
        self.hashing = hashing
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        self.cookie_ttl_s = cookie_ttl_s
        self.clock = clock
        self._unknown: OrderedDict[str, tuple[int, datetime | None]] = OrderedDict()
        self._unknown_lock = threading.Lock()

    # -- the public calls --------------------------------------------------------------------------------

    def login(self, email: str, password: str, user_agent: str = "", client_address: str = "") -> LoginResult:
        user, token, row = self._log_in(email, password, TokenKind.REFRESH, user_agent, client_address)
        return self._result(user, row, token)

    def cookie_login(self, email: str, password: str, user_agent: str = "", client_address: str = "") -> CookieLogin:
        user, token, _ = self._log_in(email, password, TokenKind.COOKIE, user_agent, client_address)
        return CookieLogin(token=token, max_age_s=self.cookie_ttl_s, user=user)

    def refresh(self, token: str, user_agent: str = "", client_address: str = "") -> LoginResult:
        touched: list[int] = []

        def rotate(session: Session) -> tuple[str, UserSession, UserInfo] | str:
            row = self.sessions.find(session, TokenKind.REFRESH, token, for_update=True)
            if row is None:
                return "unknown"
            touched[:] = [row.user_id]
            user = session.get(User, row.user_id)
            if row.revoked_at is not None or not self.sessions.revoke(session, row):
                revoked = self.sessions.revoke_all(session, row.user_id)
                self.audit.append(
                    session,
                    "session.reuse",
                    target=f"user:{user.email if user else row.user_id}",
                    outcome=Outcome.DENIED,
                    details={"session_id": row.id, "sessions_revoked": revoked},
                )
                return "reused"
            if self.sessions.is_expired(row) or user is None or not user.active:
                return "expired"
            new_token, new_row = self.sessions.open(
                session,
                user_id=user.id,
                kind=TokenKind.REFRESH,
                ttl_s=self.refresh_ttl_s,
                user_agent=user_agent,
                client_address=client_address,
            )
            return new_token, new_row, UserInfo.model_validate(user)

        outcome = self.db.write(rotate)
        for user_id in touched:
            self.sessions.forget(user_id)
        if isinstance(outcome, str):
            raise Unauthorized("the refresh token is not valid (expired, revoked or unknown); log in again")
        new_token, new_row, user = outcome
        return self._result(user, new_row, new_token)

    def logout(self, token: str, kind: TokenKind = TokenKind.REFRESH) -> bool:
        """Revoke the session of a refresh token (or an admin page cookie); False when there was none to end."""

        touched: list[int] = []

        def end(session: Session) -> bool:
            row = self.sessions.find(session, kind, token, for_update=True)
            if row is None or row.revoked_at is not None or not self.sessions.revoke(session, row):
                return False
            touched[:] = [row.user_id]
            user = session.get(User, row.user_id)
            self.audit.append(
                session,
                "session.logout",
                target=f"user:{user.email if user else row.user_id}",
                details={"session_id": row.id, "kind": kind.value},
                actor=f"user:{user.email}" if user else None,
            )
            return True

        ended = self.db.write(end)
        for user_id in touched:
            self.sessions.forget(user_id)
        return ended

    # -- the steps ---------------------------------------------------------------------------------------

    def _log_in(
        self, email: str, password: str, kind: TokenKind, user_agent: str, client_address: str
    ) -> tuple[UserInfo, str, UserSession]:
        """Check the password, then in one transaction: clear the failure count, store a rehash if one is due,
        open the session and audit the login."""
        user_id, rehash = self._authenticate(email, password)
        ttl_s = self.refresh_ttl_s if kind is TokenKind.REFRESH else self.cookie_ttl_s

        def succeed(session: Session) -> tuple[UserInfo, str, UserSession] | None:
            row = session.get(User, user_id, with_for_update=True)
            if row is None or not row.active:  # disabled (or deleted) since the password was checked
                return None
            row.failed_logins = 0
            row.locked_until = None
            if rehash is not None:
                row.password_hash = rehash
            session.flush()
            user = UserInfo.model_validate(row)
            token, opened = self.sessions.open(
                session, user_id=user_id, kind=kind, ttl_s=ttl_s, user_agent=user_agent, client_address=client_address
            )
            self.audit.append(
                session,
                "login.success",
                target=f"user:{user.email}",
                details={"session_id": opened.id, "kind": kind.value, "user_agent": user_agent[:200]},
                actor=f"user:{user.email}",
            )
            return user, token, opened

        done = self.db.write(succeed)
        if done is None:
            raise Unauthorized(BAD_CREDENTIALS)
        return done

    def _authenticate(self, email: str, password: str) -> tuple[int, str | None]:
        """The id of the account whose password this is, and its new hash when the parameters changed."""
        address = normal_email(email) if isinstance(email, str) else ""
        if len(address) > 320 or text_problem(address) is not None:
            address = ""  # not an account of ours; still costs a hash below
        if not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS or text_problem(password) is not None:
            password = ""  # matches no hash (a password has 8 characters at least), and hashes like any other
        now = self.clock.now()
        with self.db.read() as session:
            user = session.scalars(select(User).where(User.email == address)).first() if address else None
            found = None if user is None else (user.id, user.password_hash, user.active, user.locked_until)
        if found is None:
            self._unknown_account(address, password, now)
        assert found is not None
        user_id, password_hash, active, locked_until = found
        if locked_until is not None and as_utc(locked_until) > now:
            self._refuse_locked(address, as_utc(locked_until) - now, user_id=user_id)
        matches = bool(password) and self.hashing.verify(password_hash, password)
        if not matches or not active:
            self._count_failure(user_id, address, "disabled" if matches else "wrong password")
            raise Unauthorized(BAD_CREDENTIALS)
        rehash = self.hashing.hash(password) if password_hash and self.hashing.needs_rehash(password_hash) else None
        return user_id, rehash

    def _result(self, user: UserInfo, row: UserSession, refresh_token: str) -> LoginResult:
        access = self.signer.access_token(
            user_id=user.id, session_id=row.id, role=user.role, now=self.clock.now(), ttl_s=self.access_ttl_s
        )
        return LoginResult(
            access_token=access,
            expires_in=self.access_ttl_s,
            refresh_token=refresh_token,
            refresh_expires_in=self.refresh_ttl_s,
            session_id=row.id,
            user=user,
        )

    def _count_failure(self, user_id: int, address: str, reason: str) -> None:
        def fail(session: Session) -> None:
            row = session.get(User, user_id, with_for_update=True)
            if row is None:
                return
            row.failed_logins = (row.failed_logins or 0) + 1
            locked_s = lock_seconds(row.failed_logins)
            if locked_s:
                row.locked_until = self.clock.now() + timedelta(seconds=locked_s)
            self.audit.append(
                session,
                "login.failed",
                target=f"user:{address}",
                outcome=Outcome.FAILURE,
                details={"reason": reason, "failed_logins": row.failed_logins, "locked_s": locked_s},
                actor="anonymous",
            )

        self.db.write(fail)

    def _refuse_locked(self, address: str, left: timedelta, *, user_id: int | None) -> None:
        retry_after = max(1.0, left.total_seconds())
        self.audit.record(
            "login.failed",
            target=f"user:{shown_email(address)}",
            outcome=Outcome.DENIED,
            details={"reason": "locked", "retry_after_s": round(retry_after)},
            actor="anonymous",
        )
        raise TooManyRequests(
            f"too many failed logins for this account; try again in {retry_after:.0f} s", retry_after_s=retry_after
        )

    def _unknown_account(self, address: str, password: str, now: datetime) -> None:
        """An e-mail of no account: locked out like an account would be, the same hash spent, the same 401."""
        with self._unknown_lock:
            failures, locked_until = self._unknown.get(address, (0, None))
        if locked_until is not None and locked_until > now:
            self._refuse_locked(address, locked_until - now, user_id=None)
        self.hashing.burn(password)
        failures += 1
        locked_s = lock_seconds(failures)
        with self._unknown_lock:
            self._unknown[address] = (failures, now + timedelta(seconds=locked_s) if locked_s else None)
            self._unknown.move_to_end(address)
            while len(self._unknown) > UNKNOWN_ACCOUNTS_KEPT:
                self._unknown.popitem(last=False)
        self.audit.record(
            "login.failed",
            target=f"user:{shown_email(address)}",
            outcome=Outcome.FAILURE,
            details={"reason": "unknown account"},
            actor="anonymous",
        )
        raise Unauthorized(BAD_CREDENTIALS)
