"""Finding a user by id or by e-mail address.

Operators and clients name a user either way (`ragstore users erase 7`, `... erase ana@example.com`, a
conversation's `user`). Every command and route that takes a user resolves it here, so that they all
accept the same spellings (surrounding spaces, any letter case, ASCII digits only) and refuse the same way.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ragstore.db.security_models import User
from ragstore.errors import NotFound
from ragstore.valid_text import INT64_MAX, ascii_digits

__all__ = ["find_user", "normal_email"]


def normal_email(email: str) -> str:
    """E-mail addresses are stored and compared trimmed and in lower case."""
    return email.strip().lower()


def find_user(session: Session, user: int | str, *, for_update: bool = False) -> User:
    """The user by id (an int, or a string of ASCII digits) or by e-mail; NotFound naming what was asked.

    `for_update` locks the row (PostgreSQL `SELECT ... FOR UPDATE`) for a change that must not race another.
    """
    text = str(user).strip()
    if isinstance(user, int) or ascii_digits(text):
        number = int(text) if len(text) <= 19 else 0  # longer is no id (and int() refuses 4,300+ digits)
        query = select(User).where(User.id == number) if 1 <= number <= INT64_MAX else None
    else:
        query = select(User).where(User.email == normal_email(text)[:320])
    row = None if query is None else session.scalars(query.with_for_update() if for_update else query).first()
    if row is None:
        raise NotFound(f"no user {text[:320]!r}", details={"user": text[:320]})
    return row
