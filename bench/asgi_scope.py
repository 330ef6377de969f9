"""The ASGI scope of one cached-search request, for the benchmarks that call the app in process (no socket),
so that each compares its stacks on the same request."""

from __future__ import annotations

from typing import Any

SEARCH_PATH = "/v1/collections/kb/search"


def search_scope(
    body: bytes, headers: list[tuple[bytes, bytes]] | None = None, state: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`POST /v1/collections/kb/search` from 127.0.0.1 with a JSON body of `body`, plus `headers`."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": SEARCH_PATH,
        "raw_path": SEARCH_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"Python/3.11 aiohttp/3.9"),
            (b"accept", b"*/*"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *(headers or []),
        ],
    }
    if state is not None:
        scope["state"] = state
    return scope
