"""The store's identity: a random number made once per database, part of every shared cache key.

Collection ids and write versions start again from 1 in a new database, so a Redis shared by two
databases (two deployments, or one database dropped and created again) would otherwise hand one the
other's cached search results. Keys carry the identity of the database they were computed from.
"""

from __future__ import annotations

import contextlib
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragstore.db.engine import Database
from ragstore.db.models import SyncMarker

__all__ = ["STORE_ID", "store_identity"]

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
