"""SQLAlchemy conditions as SQLite text, and raw SQLite statements in psycopg's form, for the search paths
that run on the raw drivers."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.elements import ClauseElement

__all__ = ["postgres_form", "sqlite_text"]


def sqlite_text(where: ClauseElement) -> tuple[str, tuple[Any, ...]]:
    """A condition or statement as SQLite text with `?` parameters, compiled once per object (the filters'
    conditions are cached, db/filters.py), so the statement text repeats and SQLite reuses its plan."""
    found = _SQLITE_CONDITIONS.get(id(where))
    if found is not None and found[0] is where:
        return found[1], found[2]
    compiled: Any = where.compile(dialect=_SQLITE, compile_kwargs={"render_postcompile": True})
    params = tuple(compiled.params[name] for name in compiled.positiontup or ())
    with _SQLITE_CONDITIONS_LOCK:
        _SQLITE_CONDITIONS[id(where)] = (where, str(compiled), params)
        while len(_SQLITE_CONDITIONS) > 512:
            _SQLITE_CONDITIONS.pop(next(iter(_SQLITE_CONDITIONS)))
    return str(compiled), params


def postgres_form(sql: str) -> str:
    """A raw SQLite statement of the search paths' shape (`?` parameters; a list of ids as one JSON parameter
    read by `json_each`) in psycopg's form: `%s` parameters, the list one array parameter. Either way the text
    is the same for any number of ids, so each database prepares it once and reuses its plan."""
    return sql.replace("IN (SELECT value FROM json_each(?))", "= ANY(%s::bigint[])").replace("?", "%s")


_SQLITE = sqlite.dialect(paramstyle="qmark")
_SQLITE_CONDITIONS: dict[int, tuple[ClauseElement, str, tuple[Any, ...]]] = {}
_SQLITE_CONDITIONS_LOCK = threading.Lock()
