"""The MCP server over one open store, and its two transports: stdio and streamable HTTP.

Built with the official SDK's `MCPServer`: the tools (tools.py) and the document resources (resources.py)
are registered on it, and `list_resources` is extended with the caller's documents, which the SDK's
static resources cannot express. Over HTTP the SDK's bearer middleware asks `KeyVerifier` about each
request's `Authorization: Bearer` (401 before any MCP message is read when it proves nothing), and its
DNS-rebinding guard answers only the host names it is given (the CLI gives those the API answers to,
RAGSTORE_ALLOWED_HOSTS).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import anyio.to_thread
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import Resource as MCPResource
from mcp_types import ToolAnnotations
from starlette.applications import Starlette

from ragstore import __version__
from ragstore.integrations.mcp.access import Caller, ClientAddressMiddleware, KeyVerifier, bearer_caller
from ragstore.integrations.mcp.calls import CallRunner
from ragstore.integrations.mcp.resources import DOCUMENT_TEMPLATE, Documents
from ragstore.integrations.mcp.tools import Tools
from ragstore.service import RagStore

__all__ = ["MCP_PATH", "RagstoreMCP", "build_server", "http_app", "serve_http", "serve_stdio"]

log = logging.getLogger(__name__)
MCP_PATH = "/mcp"
INSTRUCTIONS = (
    "ragstore: search a knowledge base of documents split into chunks. Call list_collections first, then "
    "search a collection; a hit's document_id opens the whole document with get_document or the resource "
    f"{DOCUMENT_TEMPLATE}. add_text stores a new document (it needs a key with the write role)."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


class RagstoreMCP(MCPServer[Any]):
    """`MCPServer` whose resource listing also holds the documents the caller may read."""

    def __init__(self, documents: Documents, **options: Any) -> None:
        super().__init__(**options)
        self.documents = documents

    async def list_resources(self) -> list[MCPResource]:
        listed = await super().list_resources()
        # The store's calls block; off the event loop, as the API runs its routes.
        return listed + await anyio.to_thread.run_sync(self.documents.listing)


def build_server(store: RagStore, caller: Caller, **options: Any) -> RagstoreMCP:
    """The MCP server over `store`, each call made as `caller`'s principal (`options`: MCPServer's own)."""
    calls = CallRunner(store, caller)
    tools = Tools(calls)
    server = RagstoreMCP(
        Documents(calls),
        name="ragstore",
        title="ragstore",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level=store.settings.log_level.upper(),
        **options,
    )
    server.add_tool(tools.search, annotations=READ_ONLY)
    server.add_tool(tools.list_collections, annotations=READ_ONLY)
    server.add_tool(tools.get_document, annotations=READ_ONLY)
    server.add_tool(tools.add_text, annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
    server.resource(
        DOCUMENT_TEMPLATE,
        name="document",
        title="A document's text",
        description="The text of one document (its chunks joined), for a key that may read its collection",
        mime_type="text/plain",
    )(server.documents.read)
    return server


def serve_stdio(store: RagStore, caller: Caller) -> None:
    """Serve MCP on this process's stdin and stdout until the client closes them."""
    build_server(store, caller).run("stdio")


def _transport_security(hosts: Collection[str] | None) -> TransportSecuritySettings:
    """The SDK's Host and Origin checks over `hosts`, the names the API answers to (None: any)."""
    if hosts is None:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    shown = [f"[{n}]" if ":" in n else n for n in sorted(hosts)]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*shown, *(f"{n}:*" for n in shown)],
        allowed_origins=[f"{scheme}://{n}{port}" for n in shown for scheme in ("http", "https") for port in ("", ":*")],
    )


def http_app(store: RagStore, host: str, port: int, *, hosts: Collection[str] | None) -> Starlette:
    """The streamable HTTP app at /mcp: every request needs a bearer credential unless RAGSTORE_AUTH=off, and
    a Host header of `hosts` (the CLI passes api/origin.allowed_hosts; None: any host)."""
    options: dict[str, Any] = {}
    if store.settings.auth != "off":
        # The SDK requires an issuer for its bearer middleware; ragstore issues its own keys (`ragstore keys
        # create`), so the server names itself. Nothing is published from it (no resource_server_url).
        options["auth"] = AuthSettings(issuer_url=f"http://{host}:{port}", resource_server_url=None)
        options["token_verifier"] = KeyVerifier(store)
    server = build_server(store, bearer_caller(store), **options)
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH, host=host, transport_security=_transport_security(hosts)
    )
    app.add_middleware(ClientAddressMiddleware)
    return app


def serve_http(store: RagStore, host: str, port: int, *, hosts: Collection[str] | None) -> None:
    """Serve MCP over streamable HTTP at http://host:port/mcp until interrupted."""
    import uvicorn

    uvicorn.run(
        http_app(store, host, port, hosts=hosts),
        host=host,
        port=port,
        log_level=store.settings.log_level.lower(),
        access_log=store.settings.api_access_log,
    )
