"""A read-only PostgreSQL role for reports: it reads the tables and the reporting views, and nothing else.

Why a role and not a user: a role can be granted to any number of login users (`GRANT role TO alice`), and
revoking it takes one statement. The role's sessions are read-only by default as well, so a report tool
that opens a write transaction by mistake fails instead of writing.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine, text

from ragstore.errors import InvalidInput

__all__ = ["grant_readonly"]

_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grant_readonly(engine: Engine, role: str, *, login: bool = False) -> dict[str, str]:
    """Create `role` if it is missing and grant it SELECT on ragstore's schema (tables, views, future tables)."""
    if engine.dialect.name != "postgresql":
        raise InvalidInput(
            "read-only roles need PostgreSQL; a SQLite database has no roles (give report readers a backup copy)"
        )
    if not _ROLE.match(role):
        raise InvalidInput(f"invalid role name {role!r}: use lower-case letters, digits and '_' (at most 63)")
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as conn:
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first() is not None
        q_role, q_schema = quote(role), quote(schema)
        if not exists:
            conn.execute(text(f"CREATE ROLE {q_role} {'LOGIN' if login else 'NOLOGIN'}"))
        for statement in (
            f"GRANT CONNECT ON DATABASE {quote(database)} TO {q_role}",
            f"GRANT USAGE ON SCHEMA {q_schema} TO {q_role}",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA {q_schema} TO {q_role}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {q_schema} GRANT SELECT ON TABLES TO {q_role}",
            f"ALTER ROLE {q_role} SET default_transaction_read_only = on",
        ):
            conn.execute(text(statement))
    return {"role": role, "database": database, "schema": schema, "created": "yes" if not exists else "no"}
