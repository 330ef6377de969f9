"""One real store per test module for the LangChain tests, on SQLite or PostgreSQL.

A store per test would cost more than the tests: the adapter's tests share one, and each test takes a fresh
collection (a new name), which is as empty as a new store. The store's own embedder is never called (the
vectors are LangChain's), and the companion model is off: nothing loads a model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

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
