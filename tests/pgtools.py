"""PostgreSQL for the tests: a database per test run and a schema per test, so runs never meet.

A schema per test (selected through libpq's `options=-csearch_path=…`) costs milliseconds, where a
database per test would cost a second each; the run's database is dropped whole at the end, even if a
test left a schema behind.
"""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql
from sqlalchemy import make_url


def _conninfo(url: str) -> str:
    """A libpq connection string from a SQLAlchemy URL (the driver suffix removed)."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def create_run_database(server_url: str) -> str:
    name = f"ragstore_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_conninfo(server_url), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, run_url: str) -> None:
    name = make_url(run_url).database
    with psycopg.connect(_conninfo(server_url), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create_schema(run_url: str) -> tuple[str, str]:
    """A new schema in the run's database: (its name, a URL whose connections use it)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_conninfo(run_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    url = make_url(run_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, url.render_as_string(hide_password=False)


def drop_schema(run_url: str, schema: str) -> None:
    with psycopg.connect(_conninfo(run_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def dump_schema(database_url: str) -> bytes:
    """A plain `pg_dump` of the schema a test's DATABASE_URL searches (its `-csearch_path=` option)."""
    import subprocess

    url = make_url(database_url)
    schema = str(url.query["options"]).removeprefix("-csearch_path=")
    conninfo = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    return subprocess.run(
        ["pg_dump", "--dbname", conninfo, "--schema", schema, "--format", "plain"],
        capture_output=True,
        timeout=120,
        check=True,
    ).stdout
