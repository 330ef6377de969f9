"""The lexical index for the relational store in use."""

from __future__ import annotations

from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.lexical.base import LexicalIndex
from ragstore.lexical.budget import auto_budget_mb, usable_memory_bytes
from ragstore.lexical.memory import MemoryLexicalIndex
from ragstore.lexical.postgres_fts import PostgresFtsIndex
from ragstore.lexical.sqlite_fts import SqliteFtsIndex

__all__ = ["create_lexical_index", "lexical_memory_mb"]


def create_lexical_index(settings: Settings, db: Database) -> LexicalIndex:
    """The in-memory BM25 index over the dialect's SQL index (its fallback past RAGSTORE_LEXICAL_MEMORY_MB),
    or the SQL index alone when the setting is 0."""
    sql: LexicalIndex = SqliteFtsIndex(db) if db.is_sqlite else PostgresFtsIndex(db, rerank=settings.lexical_pg_rerank)
    budget_mb = lexical_memory_mb(settings)
    if budget_mb <= 0:
        return sql
    return MemoryLexicalIndex(db, sql, max_bytes=budget_mb * 1024 * 1024)


def lexical_memory_mb(settings: Settings) -> int:
    """RAGSTORE_LEXICAL_MEMORY_MB, or when unset a share of the memory this process may use (`budget.py`)."""
    if settings.lexical_memory_mb is not None:
        return settings.lexical_memory_mb
    return auto_budget_mb(usable_memory_bytes())
