"""Collection write versions: the number that changes whenever what a search may return changes."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from ragstore.db.models import Collection, utcnow

__all__ = ["bump_write_version"]


def bump_write_version(s: Session, collection_id: int) -> None:
    """Within the caller's transaction: cached search results of the collection become unreachable."""
    s.execute(
        update(Collection)
        .where(Collection.id == collection_id)
        .values(write_version=Collection.write_version + 1, updated_at=utcnow())
    )
