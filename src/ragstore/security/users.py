"""The users sub-facade, `store.users`: accounts, logins and sessions, and the principals they prove.

Accounts have a unique e-mail (stored lower-cased), a display name, a role (security.principal.Role) and
an active flag; every change is audited in the transaction that makes it. Changing a password or disabling
a user revokes all of that user's sessions. Logging in, refreshing and logging out are `security/login.py`;
the two callables the authentication middleware needs are here:

- `access_token_principal(token)`: an `Authorization: Bearer <JWT>` from `POST /v1/auth/login`;
- `session_cookie_principal(value)`: the admin page's cookie.
Both answer None for anything that proves nothing, and stop answering for a revoked session or a disabled
user within `sessions.SESSION_RECHECK_S` seconds (at once in the process that revoked it).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.db.security_models import User
from ragstore.errors import Conflict, InvalidInput
from ragstore.schemas.users import LoginResult, SessionCleanup, UserInfo
from ragstore.security.audit import AuditTrail
from ragstore.security.local_secrets import server_secret
from ragstore.security.login import EMAIL, CookieLogin, Logins
from ragstore.security.passwords import PasswordHashing
from ragstore.security.principal import Principal, PrincipalKind, Role
from ragstore.security.sessions import SessionState, SessionStore
from ragstore.security.tokens import TokenKind, TokenSigner
from ragstore.security.user_lookup import find_user, normal_email
from ragstore.valid_text import text_problem

__all__ = ["UserService"]

T = TypeVar("T")
MAX_USERS_LISTED = 10_000


class UserService:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        audit_trail: AuditTrail,
        clock: Clock = SYSTEM_CLOCK,
        hashing: PasswordHashing | None = None,
    ) -> None:
        self.db = db
        self.audit = audit_trail
        self.clock = clock
        self._settings = settings
        self._hashing = hashing
        self._built: tuple[TokenSigner, SessionStore, Logins] | None = None

    # The secret is read (or made, in the local profile) on first use, not when the store opens: a store
    # opened only to list collections never touches <data dir>/secrets.
    def _parts(self) -> tuple[TokenSigner, SessionStore, Logins]:
        if self._built is None:
            signer = TokenSigner(server_secret(self._settings, "jwt_secret"))
            sessions = SessionStore(self.db, signer, self.clock)
            hashing = self._hashing or PasswordHashing()
            self._hashing = hashing
            logins = Logins(
                self.db,
                sessions,
                signer,
                self.audit,
                hashing,
                access_ttl_s=self._settings.access_token_ttl_s,
                refresh_ttl_s=self._settings.refresh_token_ttl_s,
                cookie_ttl_s=self._settings.admin_session_ttl_s,
                clock=self.clock,
            )
            self._built = (signer, sessions, logins)
        return self._built

    @property
    def signer(self) -> TokenSigner:
        return self._parts()[0]

    @property
    def sessions(self) -> SessionStore:
        return self._parts()[1]

    @property
    def hashing(self) -> PasswordHashing:
        return self._parts()[2].hashing

    # -- accounts ------------------------------------------------------------------------------------------

    def create(self, email: str, password: str, *, display_name: str = "", role: Role | str = Role.READ) -> UserInfo:
        """A new active user; Conflict if the e-mail is taken (whatever its case)."""
        address = _checked_email(email)
        name = _checked_text(display_name, "display name", 200)
        chosen = _checked_role(role)
        password_hash = self.hashing.hash(password)

        def add(session: Session) -> UserInfo:
            if session.scalars(select(User.id).where(User.email == address)).first() is not None:
                raise Conflict(f"a user with the e-mail {address!r} exists already")
            row = User(email=address, display_name=name, role=chosen.value, password_hash=password_hash, active=True)
            session.add(row)
            session.flush()
            self.audit.append(
                session, "user.create", target=f"user:{address}", details={"id": row.id, "role": chosen.value}
            )
            return UserInfo.model_validate(row)

        return self.db.write(add)

    def list(self, *, limit: int = MAX_USERS_LISTED) -> builtins.list[UserInfo]:
        """Every user, oldest first (at most `limit`)."""
        with self.db.read() as session:
            rows = session.scalars(select(User).order_by(User.id).limit(max(1, min(limit, MAX_USERS_LISTED))))
            return [UserInfo.model_validate(row) for row in rows]

    def get(self, user: int | str) -> UserInfo:
        """A user by id or e-mail."""
        with self.db.read() as session:
            return UserInfo.model_validate(find_user(session, user))

    def disable(self, user: int | str) -> UserInfo:
        """Disable a user: no login from now on, and every session of theirs revoked."""
        return self._change(user, "user.disable", lambda row: setattr(row, "active", False))

    def set_password(self, user: int | str, password: str) -> UserInfo:
        """A new password; every session of the user is revoked and a lockout lifted."""
        password_hash = self.hashing.hash(password)

        def apply(row: User) -> None:
            row.password_hash = password_hash
            row.failed_logins = 0
            row.locked_until = None

        return self._change(user, "user.password", apply)

    def _change(self, user: int | str, action: str, apply: Callable[[User], None]) -> UserInfo:
        def change(session: Session) -> UserInfo:
            row = find_user(session, user, for_update=True)
            apply(row)
            session.flush()
            revoked = self.sessions.revoke_all(session, row.id)
            self.audit.append(
                session, action, target=f"user:{row.email}", details={"id": row.id, "sessions_revoked": revoked}
            )
            return UserInfo.model_validate(row)

        info = self.db.write(change)
        self.sessions.forget(info.id)
        return info

    # -- logins ----------------------------------------------------------------------------------------------

    def login(self, email: str, password: str, user_agent: str = "", client_address: str = "") -> LoginResult:
        """An access token and a refresh token; Unauthorized (the same for any wrong part), TooManyRequests
        while the account is locked after repeated failures."""
        return self._parts()[2].login(email, password, user_agent, client_address)

    def refresh(self, token: str, user_agent: str = "", client_address: str = "") -> LoginResult:
        """New tokens for a refresh token, which is spent; a spent one presented again revokes every session."""
        return self._parts()[2].refresh(token, user_agent, client_address)

    def logout(self, token: str) -> bool:
        """End the session of a refresh token (False: it was unknown or already ended)."""
        return self._parts()[2].logout(token)

    def cookie_login(self, email: str, password: str, user_agent: str = "", client_address: str = "") -> CookieLogin:
        """An admin page session: the cookie's value, lasting RAGSTORE_ADMIN_SESSION_TTL_S."""
        return self._parts()[2].cookie_login(email, password, user_agent, client_address)

    def cookie_logout(self, cookie_value: str) -> bool:
        return self._parts()[2].logout(cookie_value, TokenKind.COOKIE)

    def csrf_token(self, cookie_value: str) -> str:
        """The CSRF token of an admin page session (or of the login form's nonce)."""
        return self.signer.csrf_token(cookie_value)

    def csrf_valid(self, cookie_value: str | None, presented: str | None) -> bool:
        return self.signer.csrf_valid(cookie_value, presented)

    def cleanup_sessions(self) -> SessionCleanup:
        """Delete sessions past their expiry (the scheduled cleanup)."""
        return SessionCleanup(deleted=self.sessions.delete_expired())

    # -- principals, for the authentication middleware ----------------------------------------------------------

    def access_token_principal(self, token: str) -> Principal | None:
        claims = self.signer.read_access_token(token, now=self.clock.now())
        if claims is None:
            return None
        state = self.sessions.state_by_id(claims.session_id)
        if state is None or state.user_id != claims.user_id:
            return None
        return _principal(state)

    def session_cookie_principal(self, cookie_value: str) -> Principal | None:
        return _principal(self.sessions.state_by_cookie(cookie_value))


def _principal(state: SessionState | None) -> Principal | None:
    if state is None or not state.live:
        return None
    try:
        role = Role(state.role)
    except ValueError:
        return None
    return Principal(PrincipalKind.USER, state.email, {"*": role}, user_id=state.user_id)


def _checked_email(email: str) -> str:
    address = normal_email(_checked_text(email, "e-mail address", 320))
    if not EMAIL.fullmatch(address):
        raise InvalidInput(f"{address[:100]!r} is not an e-mail address (name@domain)")
    return address


def _checked_text(value: str, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"the {what} must be text")
    problem = text_problem(value)
    if problem is not None:
        raise InvalidInput(f"the {what}: {problem}")
    if len(value) > limit:
        raise InvalidInput(f"the {what} has {len(value)} characters; at most {limit} are allowed")
    return value


def _checked_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(f"role must be one of {', '.join(r.value for r in Role)} (got {str(role)[:50]!r})") from None
