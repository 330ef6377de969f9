"""SQLAlchemy conditions as SQLite text, and raw SQLite statements in psycopg's form, for the search paths
that run on the raw drivers."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.sql.elements import ClauseElement

__all__ = ["postgres_form", "postgres_text", "sqlite_text"]


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


def postgres_text(where: ClauseElement) -> tuple[str, tuple[Any, ...]]:
    """A condition as psycopg text with `%s` parameters, its values already in the form psycopg sends (a
    JSONB value wrapped as the dialect wraps it), compiled once per object as `sqlite_text` is: the filtered
    search's probe then runs on the raw driver like the rest of a search, not through SQLAlchemy's
    execution (about 0.1 ms a statement)."""
    found = _POSTGRES_CONDITIONS.get(id(where))
    if found is not None and found[0] is where:
        return found[1], found[2]
    compiled: Any = where.compile(dialect=_POSTGRES, compile_kwargs={"render_postcompile": True})
    processors = compiled._bind_processors
    values = []
    for name in compiled.positiontup or ():
        value = compiled.params[name]
        process = processors.get(name)
        values.append(process(value) if process is not None else value)
    params = tuple(values)
    with _POSTGRES_CONDITIONS_LOCK:
        _POSTGRES_CONDITIONS[id(where)] = (where, str(compiled), params)
        while len(_POSTGRES_CONDITIONS) > 512:
            _POSTGRES_CONDITIONS.pop(next(iter(_POSTGRES_CONDITIONS)))
    return str(compiled), params


def postgres_form(sql: str) -> str:
    """A raw SQLite statement of the search paths' shape (`?` parameters; a list of ids as one JSON parameter
    read by `json_each`) in psycopg's form: `%s` parameters, the list one array parameter. Either way the text
    is the same for any number of ids, so each database prepares it once and reuses its plan."""
    return sql.replace("IN (SELECT value FROM json_each(?))", "= ANY(%s::bigint[])").replace("?", "%s")


_SQLITE = sqlite.dialect(paramstyle="qmark")
_POSTGRES = psycopg.dialect(paramstyle="format")  # type: ignore[no-untyped-call]
_POSTGRES_CONDITIONS: dict[int, tuple[ClauseElement, str, tuple[Any, ...]]] = {}
_POSTGRES_CONDITIONS_LOCK = threading.Lock()
_SQLITE_CONDITIONS: dict[int, tuple[ClauseElement, str, tuple[Any, ...]]] = {}
_SQLITE_CONDITIONS_LOCK = threading.Lock()
