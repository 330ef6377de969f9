"""`ragstore mcp`: serve the store to MCP clients (agents, IDEs) over stdio or streamable HTTP.

The server opens the store from the same settings as every command and acts with an API key's
permissions, never the CLI's operator rights: over stdio the key in RAGSTORE_API_KEY (checked before
serving: missing or invalid is exit 2 with one line), over HTTP each request's `Authorization: Bearer`.
The SDK and the integration are imported inside the command, so `ragstore --help` imports neither.
"""

from __future__ import annotations

import contextlib
import os
import sys
from enum import StrEnum

import typer

from ragstore.cli.common import EXIT_BAD_INPUT, fail, opened_store, settings
from ragstore.errors import Unauthorized

__all__ = ["Transport", "mcp"]

DEFAULT_PORT = 8765
API_KEY_ENV = "RAGSTORE_API_KEY"


class Transport(StrEnum):
    STDIO = "stdio"
    HTTP = "http"


def mcp(
    transport: Transport = typer.Option(
        Transport.STDIO, "--transport", "-t", help="stdio (a client starts this process) or http (streamable HTTP)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="HTTP: the address to bind."),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="HTTP: the port (the endpoint is /mcp)."),
) -> None:
    """Serve MCP tools (search, list_collections, get_document, add_text) and documents as resources, with
    an API key's permissions: RAGSTORE_API_KEY over stdio, each request's Bearer key over HTTP."""
    from ragstore.api.origin import allowed_hosts
    from ragstore.cli.lifecycle import check_port, is_loopback
    from ragstore.cli.worker import configure_logging
    from ragstore.integrations._extras import MissingExtra

    cfg = settings()
    configure_logging(cfg)  # stderr only: over stdio, stdout carries the protocol
    key = _environment_key() if transport is Transport.STDIO and cfg.auth != "off" else ""
    if transport is Transport.HTTP:
        if cfg.auth == "off" and not is_loopback(host):
            fail(
                f"RAGSTORE_AUTH=off is allowed only on a loopback address, not {host}: every caller would be an "
                "admin; set RAGSTORE_AUTH=required (and send an API key) or bind to 127.0.0.1",
                EXIT_BAD_INPUT,
            )
        check_port(host, port)  # before anything slow, as `serve` does
    try:
        from ragstore.integrations import mcp as server
    except MissingExtra as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    with contextlib.ExitStack() as stack:
        # Nothing the store or a model library prints while opening may reach stdout, stdio's wire. (The
        # redirection ends before serving: the SDK takes the real stdout for the protocol.)
        with contextlib.redirect_stdout(sys.stderr):
            store = stack.enter_context(opened_store(start_worker=True))
            caller = None
            if transport is Transport.STDIO:
                try:
                    caller = server.environment_caller(store, key)
                except Unauthorized as exc:  # well-formed, but unknown, revoked or expired
                    fail(f"{API_KEY_ENV}: {exc.message}", EXIT_BAD_INPUT)
            store.warm_up()  # the embedding model, before the first search rather than inside it
        try:
            if caller is not None:
                server.serve_stdio(store, caller)
            else:
                hosts = allowed_hosts(store.settings.model_copy(update={"api_host": host}))
                server.serve_http(store, host, port, hosts=hosts)
        except KeyboardInterrupt:
            pass


def _environment_key() -> str:
    """RAGSTORE_API_KEY, refused at once (before the store opens) when it is missing or cannot be a key.

    Over stdio only an API key will do: a login's access token expires within minutes, and the process
    serves for as long as its client runs."""
    from ragstore.security.key_format import parse_key

    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        fail(f"set {API_KEY_ENV} to an API key (ragstore keys create): the MCP server acts as that key", EXIT_BAD_INPUT)
    if parse_key(key) is None:
        from ragstore.security.keys import INVALID_KEY

        fail(f"{API_KEY_ENV}: {INVALID_KEY}", EXIT_BAD_INPUT)
    return key
