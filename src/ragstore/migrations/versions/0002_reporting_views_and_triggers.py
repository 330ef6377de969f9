"""reporting views; on PostgreSQL, updated_at triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 14:25:00

The views are what a report (or the read-only role of `ragstore db grant-readonly`) reads, so that a
report never joins the raw tables itself: documents and chunks per collection, ingest activity per day,
and the health of the outbox and the job queue.

On PostgreSQL a trigger keeps `updated_at` current for every UPDATE, including those that bypass the ORM
(bulk `UPDATE … WHERE`, an operator's psql session). On SQLite the ORM's `onupdate` and the explicit
values in ragstore's bulk updates do the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPED = ("collections", "documents", "document_chunks", "sync_operations", "job_queue")
VIEWS = ("ragstore_collection_stats", "ragstore_ingest_activity", "ragstore_queue_health")


def _collection_stats() -> str:
    return """
CREATE VIEW ragstore_collection_stats AS
SELECT c.id AS collection_id,
       c.name AS collection,
       c.embedding_model,
       c.dimension,
       c.status,
       (SELECT count(*) FROM documents d WHERE d.collection_id = c.id AND d.status = 'active') AS documents,
       (SELECT count(*) FROM document_chunks k WHERE k.collection_id = c.id) AS chunks,
       (SELECT count(*) FROM document_chunks k
         WHERE k.collection_id = c.id AND k.status = 'indexed') AS indexed_chunks,
       (SELECT count(*) FROM document_chunks k
         WHERE k.collection_id = c.id AND k.status = 'pending') AS pending_chunks,
       (SELECT coalesce(sum(d.size_bytes), 0) FROM documents d
         WHERE d.collection_id = c.id AND d.status = 'active') AS bytes,
       c.write_version,
       c.updated_at
FROM collections c
"""


def _ingest_activity(day: str) -> str:
    return f"""
CREATE VIEW ragstore_ingest_activity AS
SELECT {day} AS day,
       c.name AS collection,
       count(*) AS documents,
       coalesce(sum(d.chunk_count), 0) AS chunks,
       coalesce(sum(d.size_bytes), 0) AS bytes
FROM documents d JOIN collections c ON c.id = d.collection_id
GROUP BY {day}, c.name
"""


def _queue_health(age: str) -> str:
    return f"""
CREATE VIEW ragstore_queue_health AS
SELECT 'outbox' AS queue, state, count(*) AS items, max(attempts) AS max_attempts,
       min(created_at) AS oldest, {age.format(col="min(created_at)")} AS oldest_age_s
FROM sync_operations GROUP BY state
UNION ALL
SELECT 'jobs' AS queue, state, count(*) AS items, max(attempts) AS max_attempts,
       min(created_at) AS oldest, {age.format(col="min(created_at)")} AS oldest_age_s
FROM job_queue GROUP BY state
"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(_collection_stats())
        op.execute(_ingest_activity("(d.created_at AT TIME ZONE 'UTC')::date"))
        op.execute(_queue_health("extract(epoch FROM now() - {col})"))
        op.execute(
            """
CREATE OR REPLACE FUNCTION ragstore_set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$
"""
        )
        for table in TIMESTAMPED:
            op.execute(
                f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ragstore_set_updated_at()"
            )
    else:
        op.execute(_collection_stats())
        op.execute(_ingest_activity("date(d.created_at)"))
        op.execute(_queue_health("round((julianday('now') - julianday({col})) * 86400, 3)"))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    if postgres:
        for table in TIMESTAMPED:
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_updated_at ON {table}")
        op.execute("DROP FUNCTION IF EXISTS ragstore_set_updated_at()")
