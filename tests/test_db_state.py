"""The owners of a store's identity and its shared facts, as a restore calls them on a connection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.db.identity import renew_identity, store_identity
from ragstore.db.state import VECTOR_BACKEND_KEY, clear_state, read_state, write_state
from ragstore.migrations import Migrator


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings)
    Migrator(database.engine).upgrade()
    yield database
    database.dispose()


def test_renew_identity_gives_the_database_a_new_one(db: Database) -> None:
    old = store_identity(db)
    assert store_identity(db) == old  # stable until renewed
    with db.engine.begin() as conn:
        new = renew_identity(conn)
    assert new != old and store_identity(db) == new


def test_clear_state_removes_one_fact_in_the_callers_transaction(db: Database) -> None:
    write_state(db, VECTOR_BACKEND_KEY, {"backend": "milvus"})
    write_state(db, "other", {"x": 1})
    with db.engine.begin() as conn:
        clear_state(conn, VECTOR_BACKEND_KEY)
        clear_state(conn, "absent")  # nothing to remove is not an error
    assert read_state(db, VECTOR_BACKEND_KEY) is None
    assert read_state(db, "other") == {"x": 1}
