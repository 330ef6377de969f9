"""Database errors by what they are, not all as "unreachable".

Every SQLite `OperationalError` used to be reported as "the database is unreachable" (503), whatever it
said: a statement with too many parameters, a full disk and a missing table all looked like a network
failure. Here each is named for what it is, with the category that tells the caller (and the operator)
what to do: retry (503), make room (507), migrate (500 with the command), send less (413). The message is
the driver's first line, which names the problem but carries no SQL statement and no parameters.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError

from ragstore.errors import (
    InsufficientStorage,
    MigrationError,
    OperationFailed,
    PayloadTooLarge,
    RagstoreError,
    Unavailable,
)

__all__ = ["classify", "first_line", "is_locked", "is_transient"]

# SQLite reports these by message only (the Python module exposes no extended result code before 3.11's
# `sqlite_errorname`, and not on every build), so they are matched on the text.
_SQLITE: tuple[tuple[tuple[str, ...], type[RagstoreError], str], ...] = (
    (
        ("database is locked", "database is busy", "database table is locked"),
        Unavailable,
        "the database is busy with another writer; retry shortly",
    ),
    (("database or disk is full", "disk is full"), InsufficientStorage, "the database's disk is full"),
    (
        ("too many sql variables", "too many terms", "string or blob too big", "too many columns"),
        PayloadTooLarge,
        "the request is too large for one database statement; send it in smaller parts",
    ),
    (
        ("no such table", "no such column", "no such index"),
        MigrationError,
        "the database schema is not what ragstore expects (run `ragstore migrate upgrade`)",
    ),
    (
        ("unable to open database", "disk i/o error", "not a database", "database disk image is malformed"),
        Unavailable,
        "the database file cannot be read",
    ),
    (
        ("readonly database", "attempt to write a readonly"),
        OperationFailed,
        "the database file is read-only for this process",
    ),
)

# PostgreSQL SQLSTATE classes and codes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_CODES: dict[str, tuple[type[RagstoreError], str]] = {
    "53100": (InsufficientStorage, "the database server's disk is full"),
    "53200": (Unavailable, "the database server is out of memory; retry shortly"),
    "53300": (Unavailable, "the database server has too many connections; retry shortly"),
    "54000": (PayloadTooLarge, "the request is too large for one database statement; send it in smaller parts"),
    "42P01": (MigrationError, "the database schema is not what ragstore expects (run `ragstore migrate upgrade`)"),
    "42703": (MigrationError, "the database schema is not what ragstore expects (run `ragstore migrate upgrade`)"),
    "40P01": (Unavailable, "a concurrent transaction deadlocked with this one; retry"),
    "40001": (Unavailable, "a concurrent transaction conflicted with this one; retry"),
    "57014": (Unavailable, "the database statement took longer than its time limit"),
}


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_locked(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text or "database table is locked" in text


def is_transient(exc: DBAPIError) -> bool:
    """PostgreSQL aborted the transaction to resolve a clash with another (deadlock, serialization)."""
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40P01", "40001")


def classify(exc: DBAPIError, *, is_sqlite: bool) -> RagstoreError | None:
    """The ragstore error `exc` is, or None for one the caller handles itself (a constraint violation) or
    that names no condition of the environment (then it is a bug of ragstore and stays a 500)."""
    if isinstance(exc, IntegrityError):
        return None
    line = first_line(exc)
    if is_sqlite:
        lowered = line.lower()
        for needles, category, meaning in _SQLITE:
            if any(n in lowered for n in needles):
                return category(f"{meaning}: {line}")
        return None
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if isinstance(code, str) and code in _PG_CODES:
        category, meaning = _PG_CODES[code]
        return category(f"{meaning}: {line}")
    return None
