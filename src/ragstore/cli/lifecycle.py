"""`ragstore init` and `ragstore serve`: bring a store into being, and put the HTTP API in front of it."""

from __future__ import annotations

from typing import Any

import typer

from ragstore.cli.common import (
    EXIT_BAD_INPUT,
    JsonOpt,
    check_data_dir,
    domain_errors,
    fail,
    migrator,
    out,
    print_json,
    printable,
    settings,
)
from ragstore.secrets_mask import mask

__all__ = ["init", "serve"]


def init(as_json: bool = JsonOpt) -> None:
    """Create or upgrade the database (Alembic upgrade head) and the index directory."""
    cfg = settings()
    with migrator() as m:
        m.verify_checksums()
        before = m.current()
        after = m.upgrade("head")
    if before != after:
        from ragstore.security.audit_service import record_beside

        record_beside(cfg, "migration.upgrade", target=after or "base", previous=before or "base")
    try:
        cfg.index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create the index folder {cfg.index_dir}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    database = mask(cfg.sqlalchemy_url.split("?")[0])
    if as_json:
        print_json({"before": before, "revision": after, "database": database, "index_dir": str(cfg.index_dir)})
        return
    state = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    out.print(f"database {state} revision [bold]{after}[/] ({printable(database)})")
    out.print(f"index directory {cfg.index_dir}")


def serve(
    host: str | None = typer.Option(None, help="Address to bind (default RAGSTORE_API_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default RAGSTORE_API_PORT, 8000)."),
    workers: int | None = typer.Option(None, min=1, max=64, help="Server processes (default RAGSTORE_API_WORKERS, 1)."),
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from ragstore.api.app import create_app
    from ragstore.vectors.registry import check_server_processes

    cfg = settings()
    processes = workers or cfg.api_workers
    with domain_errors():
        check_data_dir(cfg)
        check_server_processes(cfg, processes)
    options: dict[str, Any] = {
        "host": host or cfg.api_host,
        "port": port or cfg.api_port,
        "log_level": cfg.log_level.lower(),
        "access_log": cfg.api_access_log,
    }
    if processes > 1:
        # Each process builds its own app (and store) from the environment.
        uvicorn.run("ragstore.api.app:create_app", factory=True, workers=processes, **options)
        return
    uvicorn.run(create_app(cfg), **options)
