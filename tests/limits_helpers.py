"""What the rate-limit and usage tests share: a stand-in for the authentication middleware, and a TCP proxy.

`PrincipalFromHeader` plays api/auth.py's part of the contract (it puts a Principal in
`scope["state"]["principal"]`) from a test header, so the limiter is tested against every kind of caller
without the key store. `Proxy` forwards a port of this helper's range to the shared Redis, so a test can
take "Redis" away and bring it back without touching the shared server.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from starlette.types import ASGIApp, Receive, Scope, Send

from ragstore.security.principal import Principal, PrincipalKind, Role

__all__ = ["PrincipalFromHeader", "Proxy", "principal_header"]

HEADER = b"x-test-principal"


def principal_header(kind: str, ident: int, role: str = "read", collection: str = "*") -> dict[str, str]:
    return {HEADER.decode(): f"{kind}:{ident}:{role}:{collection}"}


class PrincipalFromHeader:
    """`x-test-principal: key:12:read:*` -> a key principal with id 12 holding read on every collection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            value = dict(scope["headers"]).get(HEADER)
            if value is not None:
                kind, ident, role, collection = value.decode().split(":")
                principal = Principal(
                    PrincipalKind.KEY if kind == "key" else PrincipalKind.USER,
                    f"{kind}{ident}",
                    {collection: Role(role)},
                    key_id=int(ident) if kind == "key" else None,
                    user_id=int(ident) if kind == "user" else None,
                )
                scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


class Proxy:
    """A TCP forwarder from 127.0.0.1:`port` to `target`; `stop()` closes the port and every connection."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()
