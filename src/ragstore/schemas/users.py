"""Users, logins and sessions: what `store.users` returns and what the /v1/auth and /v1/users routes take.

No type here carries a password hash or a token's HMAC; the tokens a login returns are shown to their
owner once, in the answer to the login (or refresh) that made them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ragstore.schemas.core import Model, StorableStr, UtcTime

__all__ = [
    "AdminLogin",
    "LoginRequest",
    "LoginResult",
    "LogoutRequest",
    "PasswordChange",
    "RefreshRequest",
    "SessionCleanup",
    "UserCreate",
    "UserInfo",
    "UserRole",
    "Whoami",
]

UserRole = Literal["read", "write", "admin", "metrics"]
MAX_EMAIL_CHARS = 320
MAX_TOKEN_CHARS = 4096


class UserInfo(Model):
    """A user as every face shows them: never the password hash."""

    id: int
    email: str
    display_name: str
    role: UserRole
    active: bool
    locked_until: UtcTime | None = None
    created_at: UtcTime | None = None
    updated_at: UtcTime | None = None


class LoginResult(Model):
    """A login's (or a refresh's) tokens: the access token for `Authorization: Bearer`, and the refresh token
    that buys the next one. Both are shown once; keep the refresh token like a password."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds the access token is valid for.")
    refresh_token: str
    refresh_expires_in: int = Field(description="Seconds the refresh token is valid for, unless used or revoked.")
    session_id: int
    user: UserInfo


class Whoami(Model):
    """Who the caller is, as the server sees them (`GET /v1/auth/me`)."""

    kind: str = Field(description="user, key, cli, anonymous (auth off) or system.")
    name: str
    actor: str = Field(description="How the audit log names the caller.")
    grants: dict[str, UserRole] = Field(description="Role by collection name; `*` is every collection.")
    user: UserInfo | None = None


class AdminLogin(Model):
    """The admin page's login: who logged in, and the page to go to (the session is in the cookie)."""

    user: UserInfo
    next: str = "/admin"


class SessionCleanup(Model):
    """What the scheduled cleanup removed: sessions past their expiry (revoked ones included)."""

    deleted: int


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: StorableStr = Field(min_length=3, max_length=MAX_EMAIL_CHARS)
    display_name: StorableStr = Field("", max_length=200)
    role: UserRole = "read"
    password: str = Field(min_length=8, max_length=1024, description="8 to 1024 characters, no NUL.")


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=8, max_length=1024, description="8 to 1024 characters, no NUL.")


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=1, max_length=MAX_EMAIL_CHARS)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)


LogoutRequest = RefreshRequest
