"""The tokens of a login: the JWT access token, the opaque refresh and cookie tokens, and CSRF tokens.

- An access token is a JWT (HS256 under JWT_SECRET, PyJWT) naming the user (`sub`), the session (`sid`)
  and the role, valid for RAGSTORE_ACCESS_TOKEN_TTL_S. Its expiry is checked against the injected clock,
  not PyJWT's own, so tests move time instead of sleeping.
- A refresh token and an admin page cookie are 256 random bits (`secrets.token_urlsafe(32)`); the database
  keeps only an HMAC-SHA256 of each under a key derived from JWT_SECRET, with a different label per kind,
  so a refresh token presented as a cookie (or the reverse) matches no row.
- A CSRF token is an HMAC of the cookie it belongs to: bound to that session, stored nowhere, and useless to
  a page that cannot read the HttpOnly cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import jwt

__all__ = ["AccessClaims", "TokenKind", "TokenSigner", "new_token"]

ISSUER = "ragstore"
ALGORITHM = "HS256"
TOKEN_BYTES = 32  # 256 bits
MAX_TOKEN_CHARS = 4096  # anything longer is not a token of ours; refused before any work


class TokenKind(StrEnum):
    REFRESH = "refresh"
    COOKIE = "cookie"


def new_token() -> str:
    """A fresh opaque token: 256 random bits, URL-safe text (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: int
    role: str
    expires_at: float  # Unix seconds


class TokenSigner:
    """Everything keyed by JWT_SECRET: access tokens, token HMACs, CSRF tokens (each under its own label)."""

    def __init__(self, secret: bytes) -> None:
        self._jwt_key = secret
        self._hash_key = hmac.new(secret, b"ragstore session token hmac", hashlib.sha256).digest()
        self._csrf_key = hmac.new(secret, b"ragstore csrf token", hashlib.sha256).digest()

    def token_hash(self, kind: TokenKind, token: str) -> str:
        """The hex HMAC stored for a refresh or cookie token (64 characters, the column's width)."""
        message = f"{kind.value}|{token}".encode("utf-8", "surrogatepass")
        return hmac.new(self._hash_key, message, hashlib.sha256).hexdigest()

    def access_token(self, *, user_id: int, session_id: int, role: str, now: datetime, ttl_s: int) -> str:
        issued = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": str(user_id),
            "sid": str(session_id),
            "role": role,
            "iat": issued,
            "exp": issued + ttl_s,
        }
        return jwt.encode(claims, self._jwt_key, algorithm=ALGORITHM)

    def read_access_token(self, token: str, *, now: datetime) -> AccessClaims | None:
        """The claims of a token this server signed and that has not expired at `now`; None otherwise."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        try:
            claims = jwt.decode(
                token,
                self._jwt_key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "sid", "iss"], "verify_exp": False, "verify_iat": False},
            )
            expires_at = float(claims["exp"])
            user_id, session_id, role = int(claims["sub"]), int(claims["sid"]), str(claims.get("role", ""))
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            return None
        if expires_at <= now.timestamp():
            return None
        return AccessClaims(user_id=user_id, session_id=session_id, role=role, expires_at=expires_at)

    def csrf_token(self, bound_to: str) -> str:
        """The CSRF token of a cookie (or of the login form's nonce): an HMAC of it, 43 URL-safe characters."""
        digest = hmac.new(self._csrf_key, bound_to.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def csrf_valid(self, bound_to: str | None, presented: str | None) -> bool:
        if not bound_to or not presented or len(presented) > 128:
            return False
        return hmac.compare_digest(self.csrf_token(bound_to).encode(), presented.encode("utf-8", "replace"))
