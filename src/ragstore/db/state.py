"""Read and write `store_state`: small facts every process of a store agrees on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ragstore.db.engine import Database
from ragstore.db.models import StoreState

__all__ = ["AUDIT_VERIFIED_KEY", "VECTOR_BACKEND_KEY", "clear_state", "read_state", "write_state"]

# Which vector backend holds the store's vectors: recorded at creation, switched by `ragstore index migrate`.
VECTOR_BACKEND_KEY = "vector_backend"
# When the audit log was last verified and whether it held: {"at": ISO time, "ok": bool} (store.audit.verify).
AUDIT_VERIFIED_KEY = "audit_verified"


def read_state(db: Database, key: str) -> dict[str, Any] | None:
    with db.read() as s:
        row = s.get(StoreState, key)
        return dict(row.value) if row is not None else None


def write_state(db: Database, key: str, value: dict[str, Any] | None) -> None:
    """Set (or, with None, remove) one fact, in its own transaction."""

    def unit(s: Session) -> None:
        row = s.get(StoreState, key)
        if value is None:
            if row is not None:
                s.delete(row)
        elif row is None:
            s.add(StoreState(key=key, value=value))
        else:
            row.value = value

    db.write(unit)


def clear_state(executor: Connection | Session, key: str) -> None:
    """Remove one fact in the caller's transaction (a restore prepares its copy through this)."""
    executor.execute(delete(StoreState).where(StoreState.key == key))
