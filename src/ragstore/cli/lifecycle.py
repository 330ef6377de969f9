"""`ragstore init` and `ragstore serve`: bring a store into being, and put the HTTP API in front of it."""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import socket
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from ragstore.cli.metrics_dir import prepare_multiprocess_dir
from ragstore.secrets_mask import mask

if TYPE_CHECKING:
    from ragstore.config import Settings
    from ragstore.runtime.demo import DemoReport
    from ragstore.schemas.security import CreatedKey

__all__ = ["ADMIN_KEY_FILE", "check_port", "init", "is_loopback", "serve"]

ADMIN_KEY_FILE = "admin.key"


def init(
    demo: bool = typer.Option(
        False,
        "--demo",
        help="Also load a small demo: a demo user, Korean and English conversations citing the sample corpus.",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Create or upgrade the database (Alembic upgrade head) and the index directory; `--demo` seeds a demo
    (idempotent: a second run adds nothing)."""
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
    admin = _first_admin_key(cfg)
    seeded = _load_demo(cfg) if demo else None
    key_file = cfg.data_dir / ADMIN_KEY_FILE
    database = mask(cfg.sqlalchemy_url.split("?")[0])
    if as_json:
        report: dict[str, Any] = {
            "before": before,
            "revision": after,
            "database": database,
            "index_dir": str(cfg.index_dir),
        }
        if admin is not None:
            report["admin_key"] = {"id": admin.id, "key": admin.key, "file": str(key_file)}
        if seeded is not None:
            report["demo"] = asdict(seeded)
        print_json(report)
        return
    state = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    out.print(f"database {state} revision [bold]{after}[/] ({printable(database)})")
    out.print(f"index directory {cfg.index_dir}")
    if admin is not None:
        out.print(f"created admin API key {admin.id}, written to {key_file} (mode 0600); shown this once:")
        out.print(admin.key, highlight=False, soft_wrap=True)
        out.print(f'use it as: curl -H "Authorization: Bearer $(cat {key_file})" ...; delete the file once stored')
    if seeded is not None:
        out.print(
            f"demo: user {seeded.user_id}, {seeded.ingested} sample documents ingested, "
            f"{seeded.conversations} conversations ({seeded.messages} messages) added, {seeded.workflows} workflows"
        )
        for note in seeded.notes:
            out.print(f"demo: {note}")


def _load_demo(cfg: Settings) -> DemoReport:
    """`init --demo`: seed the demo of runtime/demo.py as the local operator."""
    from ragstore.runtime.demo import load_demo
    from ragstore.service import RagStore

    with domain_errors():
        cfg.make_data_dir()
        with RagStore.open(cfg) as store:
            return load_demo(store)


def _first_admin_key(cfg: Settings) -> CreatedKey | None:
    """With RAGSTORE_AUTH=required and no active admin key, make one and keep it in <data dir>/admin.key (0600),
    so that a fresh install can be used over HTTP at once (`make run`, the README's curl line)."""
    if cfg.auth != "required":
        return None
    from ragstore.service import RagStore

    with domain_errors():
        cfg.make_data_dir()
        with RagStore.open(cfg, recover=False) as store:
            if store.keys.has_active_admin():
                return None
            created = store.keys.create("admin (made by ragstore init)", "admin")
    _write_private(cfg.data_dir / ADMIN_KEY_FILE, created.key + "\n")
    return created


def _write_private(path: Path, text: str) -> None:
    """Write `text` readable by its owner only, from the first byte (a new file, then renamed over the old)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


CHOOSE_PORT = "choose another with --port or RAGSTORE_API_PORT"
# How long uvicorn's supervisor waits for a worker process to answer its ping before it kills and replaces
# it (uvicorn's default: 5 s). The ping is answered by a Python thread of the worker, so it waits for the
# GIL, and kiwi's model load and first analysis hold the GIL for 1.2 and 2.0 s on an idle core; on a busy
# machine that passed 5 s, and the supervisor killed each worker in its start-up, again and again.
WORKER_HEALTHCHECK_S = 60


def check_port(host: str, port: int) -> None:
    """Exit 2 with one line if the server could not bind `host`:`port` (in use, a privileged port, not an
    address of this machine).

    Asked before anything slow: uvicorn binds a single process's port only after the app's start-up (the
    store opened, the models loaded), so a port in use used to be reported after all of that, in uvicorn's
    words, with no hint. The probe binds as uvicorn and asyncio do (SO_REUSEADDR, so a port whose last
    connections linger in TIME_WAIT counts as free; IPv6 sockets IPv6-only) every address `host` resolves
    to, and closes again: uvicorn then binds as always (with --workers, in the parent before any process
    starts). A process that takes the port in the seconds between is still reported by uvicorn.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        fail(f"cannot serve on {host!r}: {exc}; choose the address with --host or RAGSTORE_API_HOST", EXIT_BAD_INPUT)
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                fail(_bind_refusal(host, port, exc), EXIT_BAD_INPUT)


def _bind_refusal(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use (another ragstore?); {CHOOSE_PORT}"
    if exc.errno == errno.EACCES:
        return f"port {port} on {host} needs privileges this user lacks (ports below 1024); {CHOOSE_PORT}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine; choose the address with --host or RAGSTORE_API_HOST"
    return f"cannot serve on port {port} of {host}: {exc.strerror or exc}"


def serve(
    host: str | None = typer.Option(None, help="Address to bind (default RAGSTORE_API_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, min=1, max=65535, help="Port (default RAGSTORE_API_PORT, 8000)."),
    workers: int | None = typer.Option(None, min=1, max=64, help="Server processes (default RAGSTORE_API_WORKERS, 1)."),
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs). A port in use is refused at once (exit 2), before start-up."""
    cfg = settings()
    processes = workers or cfg.api_workers
    bind = host or cfg.api_host
    if cfg.auth == "off" and not is_loopback(bind):
        fail(
            f"RAGSTORE_AUTH=off is allowed only on a loopback address, not {bind}: every caller would be an admin; "
            "set RAGSTORE_AUTH=required (and send an API key) or bind to 127.0.0.1",
            EXIT_BAD_INPUT,
        )
    from ragstore.vectors.registry import check_server_processes

    with domain_errors():
        check_data_dir(cfg)
        check_server_processes(cfg, processes)
    check_port(bind, port or cfg.api_port)
    # Before anything imports prometheus-client: it reads the folder from the environment then, and every
    # server process counts into it, so that GET /metrics answered by any of them sums them all.
    metrics_dir = prepare_multiprocess_dir()
    # Imported only now: the app's modules alone take about 3 s to import on a busy machine.
    import uvicorn

    from ragstore.api.app import create_app

    options: dict[str, Any] = {
        "host": bind,
        "port": port or cfg.api_port,
        "log_level": cfg.log_level.lower(),
        "access_log": cfg.api_access_log,
    }
    try:
        if processes > 1:
            # Each process builds its own app (and store) from the environment.
            uvicorn.run(
                "ragstore.api.app:create_app",
                factory=True,
                workers=processes,
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
                **options,
            )
            return
        uvicorn.run(create_app(cfg), **options)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
