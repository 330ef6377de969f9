"""`ragstore db`: administration of the relational store itself (PostgreSQL roles), beside the store."""

from __future__ import annotations

import typer

from ragstore.cli.common import JsonOpt, domain_errors, out, print_json, settings

__all__ = ["app"]

app = typer.Typer(help="Relational-store administration (PostgreSQL roles).", no_args_is_help=True)


@app.command("grant-readonly")
def db_grant_readonly(
    role: str = typer.Argument(..., help="Role to create (if missing) and grant read access to."),
    login: bool = typer.Option(
        False, "--login", help="Create the role with LOGIN (default NOLOGIN: grant it to users)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Create a read-only PostgreSQL role for reports: SELECT on every table and reporting view, nothing else."""
    from ragstore.db.engine import Database
    from ragstore.db.roles import grant_readonly

    with domain_errors():
        db = Database(settings())
        try:
            result = grant_readonly(db.engine, role, login=login)
        finally:
            db.dispose()
    if as_json:
        print_json(result)
        return
    created = "created and granted" if result["created"] == "yes" else "granted"
    out.print(f"role {role} {created} read-only access to {result['database']}.{result['schema']}")
