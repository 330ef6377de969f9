"""`ragstore config`: what the environment configures, and whether it works (without opening the store)."""

from __future__ import annotations

import typer

from ragstore.cli.common import JsonOpt, domain_errors, migrator, out, print_json, settings
from ragstore.errors import MigrationError, RagstoreError

__all__ = ["app"]

app = typer.Typer(help="Show and check the configuration.", no_args_is_help=True)


@app.command("show")
def config_show(as_json: bool = JsonOpt) -> None:
    """Every setting by its environment variable, secrets masked (a generated server secret: where it is kept)."""
    from ragstore.security.local_secrets import generated_secrets

    cfg = settings()
    values = cfg.masked()
    for variable, path in generated_secrets(cfg).items():
        values[variable] = f"********** (generated in {path})"
    if as_json:
        print_json(values)
        return
    from rich.table import Table

    table = Table()
    table.add_column("variable")
    table.add_column("value")
    for key, value in values.items():
        table.add_row(key, "" if value is None else str(value))
    out.print(table)


@app.command("check")
def config_check(as_json: bool = JsonOpt) -> None:
    """Validate the configuration, reach the database and verify its migration checksums."""
    from ragstore.vectors.registry import checked_spec

    cfg = settings()
    with domain_errors():
        checked_spec(cfg)
    with migrator() as m:
        try:
            m.verify_checksums()
            current, head = m.current(), m.head()
        except RagstoreError:
            raise
        except Exception as exc:
            problem = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
            raise MigrationError(f"cannot reach the database {cfg.sqlalchemy_url}: {problem}") from exc
    if as_json:
        print_json({"ok": True, "profile": cfg.env, "current": current, "head": head, "up_to_date": current == head})
        return
    out.print(f"configuration ok (profile {cfg.env})")
    out.print(
        f"database schema at {current or 'nothing'}; code needs {head}"
        + ("" if current == head else ": run `ragstore init`")
    )
