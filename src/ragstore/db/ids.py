"""Primary keys handed out before a bulk insert, so that rows can be written with one `executemany`.

Why: an `INSERT … RETURNING` that must give ids back in parameter order is run by SQLAlchemy as one
statement per row on SQLite (the database does not promise the order of a multi-row RETURNING), which
made bulk ingest cost ~170 µs per chunk. Knowing the ids up front also lets a chunk carry its
`vector_id` from the first write.

Ids are never reused: on SQLite the tables are AUTOINCREMENT and the next id is taken from
`sqlite_sequence` (the highest id ever used) under the write lock that every write unit holds from its
`BEGIN IMMEDIATE`; on PostgreSQL the ids come from the column's own sequence.
"""

from __future__ import annotations

from sqlalchemy import Table, text
from sqlalchemy.orm import Session

__all__ = ["allocate_ids"]


def allocate_ids(session: Session, table: Table, count: int) -> list[int]:
    """`count` fresh primary keys of `table`, in ascending order; call inside a write unit."""
    if count <= 0:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        highest = session.execute(
            text(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = :name), 0), "
                f"coalesce((SELECT max(id) FROM {table.name}), 0))"
            ),
            {"name": table.name},
        ).scalar_one()
        start = int(highest) + 1
        return list(range(start, start + count))
    if dialect == "postgresql":
        rows = session.execute(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
            {"table": table.name, "n": count},
        ).scalars()
        return sorted(int(i) for i in rows)
    raise NotImplementedError(f"no id allocation for the {dialect} dialect")
