"""SQLAlchemy conditions as SQLite and psycopg text, and raw SQLite statements in psycopg's form, for the
search paths that run on the raw drivers."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql.elements import ClauseElement

__all__ = ["postgres_form", "postgres_text", "sqlite_text"]


class _Compiled:
    """Conditions compiled for one raw driver, kept per object: the filters' conditions are cached
    (db/filters.py), so the statement text repeats and the database reuses its plan. The condition itself is
    kept beside its text, so its id cannot be reused by another object while the entry lives."""

    def __init__(self, dialect: Dialect, *, processed: bool) -> None:
        self.dialect = dialect
        self.processed = processed
        self._found: dict[int, tuple[ClauseElement, str, tuple[Any, ...]]] = {}
        self._lock = threading.Lock()

    def text(self, where: ClauseElement) -> tuple[str, tuple[Any, ...]]:
        found = self._found.get(id(where))
        if found is not None and found[0] is where:
            return found[1], found[2]
        compiled: Any = where.compile(dialect=self.dialect, compile_kwargs={"render_postcompile": True})
        names = compiled.positiontup or ()
        processors = compiled._bind_processors if self.processed else {}
        params = tuple(_processed(processors.get(name), compiled.params[name]) for name in names)
        with self._lock:
            self._found[id(where)] = (where, str(compiled), params)
            while len(self._found) > 512:
                self._found.pop(next(iter(self._found)))
        return str(compiled), params


def _processed(process: Any, value: Any) -> Any:
    return process(value) if process is not None else value


# SQLite's driver takes the values as they are (the filters compare JSON values and ISO text).
_SQLITE = _Compiled(sqlite.dialect(paramstyle="qmark"), processed=False)
# psycopg needs the dialect's own bind processing: a JSONB value goes as psycopg's `Jsonb`.
_POSTGRES = _Compiled(psycopg.dialect(paramstyle="format"), processed=True)  # type: ignore[no-untyped-call]


def sqlite_text(where: ClauseElement) -> tuple[str, tuple[Any, ...]]:
    """A condition or statement as SQLite text with `?` parameters, compiled once per object."""
    return _SQLITE.text(where)


def postgres_text(where: ClauseElement) -> tuple[str, tuple[Any, ...]]:
    """A condition as psycopg text with `%s` parameters and its values in the form psycopg sends, compiled
    once per object: the filtered search's probe then runs on the raw driver like the rest of a search, not
    through SQLAlchemy's execution (about 0.1 ms a statement, more with rows to process)."""
    return _POSTGRES.text(where)


def postgres_form(sql: str) -> str:
    """A raw SQLite statement of the search paths' shape (`?` parameters; a list of ids as one JSON parameter
    read by `json_each`) in psycopg's form: `%s` parameters, the list one array parameter. Either way the text
    is the same for any number of ids, so each database prepares it once and reuses its plan."""
    return sql.replace("IN (SELECT value FROM json_each(?))", "= ANY(%s::bigint[])").replace("?", "%s")
