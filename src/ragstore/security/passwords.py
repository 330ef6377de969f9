"""Passwords: argon2id hashes (argon2-cffi), a bounded length, and a rehash when the parameters change.

argon2id is memory-hard, so a stolen `users` table costs an attacker memory per guess, not just time. The
parameters are argon2-cffi's RFC 9106 "low memory" profile (64 MiB, 3 passes): about 50 ms a hash on one
core, which bounds how fast even the server itself can be made to guess. A hash made with older parameters
still verifies; `needs_rehash` tells the login to store a new one. The password itself is never stored,
logged or put into an error message: only the hash leaves this module.
"""

from __future__ import annotations

import contextlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

from ragstore.errors import InvalidInput

__all__ = ["MAX_PASSWORD_CHARS", "MIN_PASSWORD_CHARS", "PasswordHashing", "check_password_text"]

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024  # argon2 hashes any length, but a megabyte "password" would be a cheap DoS


def check_password_text(password: str) -> str:
    """The password if it is acceptable; InvalidInput naming the rule (never the password) otherwise."""
    if not isinstance(password, str):
        raise InvalidInput("the password must be text")
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise InvalidInput(
            f"the password must have {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters (got {len(password)})"
        )
    if "\x00" in password:
        raise InvalidInput("the password must not contain a NUL character")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("the password is not valid Unicode text") from None
    return password


class PasswordHashing:
    """Hash and verify with one argon2id parameter set, plus a dummy hash to spend the same time on an
    unknown account (so "no such e-mail" and "wrong password" cannot be told apart by timing)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)
        self._dummy = self.hasher.hash("ragstore: no such account, spend the time anyway")

    def hash(self, password: str) -> str:
        return self.hasher.hash(check_password_text(password))

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether `password` matches; a missing or unreadable hash verifies against the dummy (and fails)."""
        if stored_hash is None:
            self.burn(password)
            return False
        try:
            return self.hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError):
            return False
        except InvalidHashError:
            self.burn(password)
            return False

    def burn(self, password: str) -> None:
        """Spend the time of one verification and learn nothing (the unknown-account path)."""
        with contextlib.suppress(VerifyMismatchError, VerificationError, InvalidHashError):
            self.hasher.verify(self._dummy, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True
