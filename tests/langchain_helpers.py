"""One real store per test module for the LangChain tests, on SQLite or PostgreSQL.

A store per test would cost more than the tests: the adapter's tests share one, and each test takes a fresh
collection (a new name), which is as empty as a new store. The store's own embedder is never called (the
vectors are LangChain's), and the companion model is off: nothing loads a model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from ragstore.config import Settings
from ragstore.service import RagStore


@contextmanager
def shared_store(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[RagStore]:
    """`request.param` is "sqlite" or "postgresql" (a schema of the run's database, dropped afterwards)."""
    overrides: dict[str, object] = {
        "data_dir": data_dir,
        "auth": "off",
        "health_snapshot_schedule": "",
        "companion_model": "none",
    }
    schema = run_url = None
    if request.param == "postgresql":
        from pgtools import create_schema

        run_url = request.getfixturevalue("postgres_run_url")
        schema, overrides["database_url"] = create_schema(run_url)
    try:
        with RagStore.open(Settings(**overrides)) as store:  # type: ignore[arg-type]
            yield store
    finally:
        if schema is not None and run_url is not None:
            from pgtools import drop_schema

            drop_schema(run_url, schema)


class TableEmbeddings(Embeddings):
    """Vectors the test chooses (a text's vector is the table's), so a ranking can be predicted; a text not in
    the table gets LangChain's deterministic fake vector of the same size."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.size = len(next(iter(table.values())))
        self.fallback = DeterministicFakeEmbedding(size=self.size)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return list(self.table[text]) if text in self.table else self.fallback.embed_query(text)


def typed(value: Any) -> Any:
    """`value` with every scalar's type beside it: `1 == 1.0 == True` in Python, and a round trip must keep
    an int an int."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)
