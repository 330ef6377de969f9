"""The lexical index for the relational store in use."""

from __future__ import annotations

from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.lexical.base import LexicalIndex
from ragstore.lexical.postgres_fts import PostgresFtsIndex
from ragstore.lexical.sqlite_fts import SqliteFtsIndex

__all__ = ["create_lexical_index"]


def create_lexical_index(settings: Settings, db: Database) -> LexicalIndex:
    if db.is_sqlite:
        return SqliteFtsIndex(db)
    return PostgresFtsIndex(db, rerank=settings.lexical_pg_rerank)
