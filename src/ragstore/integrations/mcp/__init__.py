"""ragstore as an MCP server (`ragstore mcp`, the `ragstore[mcp]` extra): search, read and add documents from
an agent, with the API's keys and permissions.

- access.py: who is calling (RAGSTORE_API_KEY over stdio, each request's bearer over HTTP);
- calls.py: one call run as its principal, metered into the usage log, its errors made readable;
- tools.py: the tools, each checked and validated as its API route is;
- resources.py: documents as text resources, and their bounded listing;
- server.py: the SDK server over one store, and the stdio and streamable HTTP transports.
"""

from __future__ import annotations

from ragstore.integrations._extras import require

require("mcp", "mcp")

from ragstore.integrations.mcp.access import environment_caller  # noqa: E402
from ragstore.integrations.mcp.server import MCP_PATH, build_server, http_app, serve_http, serve_stdio  # noqa: E402

__all__ = ["MCP_PATH", "build_server", "environment_caller", "http_app", "serve_http", "serve_stdio"]
