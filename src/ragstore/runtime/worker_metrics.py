"""`ragstore worker --metrics-port N`: a worker's own event metrics, for Prometheus to scrape.

A worker serves no API, so the API's `/metrics` never sees what it did: the operations it applied to the
index, the jobs and ingest stages it ran, the embeddings it asked for and the SQL it sent. Those counts live
in the worker's process (telemetry.py); this serves them at `GET /metrics` on a port of its own. The store's
state (outbox backlog, jobs by state, backups, checks) is the API's to report, read from the shared
database: served here too, a sum over jobs would count it twice.

The same rule as the API's route: a key of the `metrics` or `admin` role (`Authorization: Bearer ...`),
unless RAGSTORE_AUTH=off. The server answers only `GET /metrics`, on 127.0.0.1 unless told otherwise.
prometheus-client's WSGI app writes the text format; the key check wraps it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from ragstore.errors import RagstoreError
from ragstore.security.principal import Role
from ragstore.telemetry import EVENTS

if TYPE_CHECKING:
    from ragstore.service import RagStore

__all__ = ["WorkerMetricsServer"]

log = logging.getLogger(__name__)
StartResponse = Callable[..., Any]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress never holds the worker's exit


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line per scrape would drown the worker's log
        log.debug("metrics: " + format, *args)


class WorkerMetricsServer:
    """Started beside the worker's loop; `stop()` when the worker stops."""

    def __init__(self, store: RagStore, host: str, port: int) -> None:
        self.store = store
        self._metrics = make_wsgi_app(EVENTS)
        self._server = make_server(host, port, self._app, server_class=_ThreadingServer, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="worker-metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> WorkerMetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            return _plain(start_response, "404 Not Found", "only GET /metrics is served here")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", "only GET /metrics is served here", allow="GET")
        refused = self._refusal(environ.get("HTTP_AUTHORIZATION", ""))
        if refused is not None:
            return _plain(start_response, *refused)
        environ = {**environ, "QUERY_STRING": ""}  # no name[] filters: the whole exposition, as the API's route
        return self._metrics(environ, start_response)  # type: ignore[no-any-return]

    def _refusal(self, authorization: str) -> tuple[str, str] | None:
        if self.store.settings.auth == "off":
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "401 Unauthorized", "send a key of the metrics or admin role: Authorization: Bearer rsk_..."
        try:
            principal = self.store.keys.authenticate(token.strip())
        except RagstoreError:
            return "401 Unauthorized", "the key is not valid (unknown, revoked or expired)"
        if not principal.allows(Role.METRICS):
            return "403 Forbidden", "the key holds neither the metrics nor the admin role"
        return None


def _plain(start_response: StartResponse, status: str, text: str, **headers: str) -> list[bytes]:
    body = (text + "\n").encode()
    extra = [(name.title(), value) for name, value in headers.items()]
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *extra])
    return [body]
