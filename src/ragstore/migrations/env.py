"""Alembic environment: the URL and metadata come from ragstore, never from an ini file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from ragstore.db.models import Base
from ragstore.migrations import include_object_for

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object_for(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("ragstore migrations run through ragstore.migrations.Migrator, which supplies the connection")
_run(connection)
