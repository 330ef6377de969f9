"""The store's identity: a random number made once per database, part of every shared cache key.

Collection ids and write versions start again from 1 in a new database, so a Redis shared by two
databases (two deployments, or one database dropped and created again) would otherwise hand one the
other's cached search results. Keys carry the identity of the database they were computed from.
"""

from __future__ import annotations

import contextlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragstore.db.engine import Database
from ragstore.db.models import SyncMarker

__all__ = ["STORE_ID", "renew_identity", "store_identity"]

STORE_ID = "store_id"


def store_identity(db: Database) -> int:
    """This database's identity, created on first use (concurrent first uses agree on one)."""
    with db.read() as s:
        found = s.scalar(select(SyncMarker.value).where(SyncMarker.name == STORE_ID))
    if found is not None:
        return int(found)

    def create(s: Session) -> None:
        s.add(SyncMarker(name=STORE_ID, value=secrets.randbits(62)))

    with contextlib.suppress(IntegrityError):  # another process created it first
        db.write(create)
    with db.read() as s:
        return int(s.scalar(select(SyncMarker.value).where(SyncMarker.name == STORE_ID)) or 0)


def renew_identity(executor: Connection | Session) -> int:
    """Give the database a new identity, in the caller's transaction; returns it.

    For a copy that is to become a store of its own (a restore): cache entries computed from the database
    it was copied from must never be served for it.
    """
    value = secrets.randbits(62)
    executor.execute(update(SyncMarker).where(SyncMarker.name == STORE_ID).values(value=value))
    return value
