"""A fake OpenAI embeddings server, shipped in the package so that tests (ours and our users') need no network.

It is a real HTTP server on 127.0.0.1 speaking the real wire format: it checks the bearer token, validates
the body the way the API does (answering with OpenAI's error shape), returns deterministic vectors derived
from each text's hash, reports token usage, and can be told to fail or stall for the next requests.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import numpy as np

from ragstore.embeddings.openai import KNOWN_DIMENSIONS, MAX_INPUTS_PER_REQUEST, estimate_tokens

__all__ = ["FakeOpenAI"]


@dataclass
class _Scripted:
    status: int
    retry_after: float | None
    message: str


def fake_vector(text: str, dimension: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).normal(size=dimension)
    return [float(x) for x in v / np.linalg.norm(v)]


class FakeOpenAI:
    """`with FakeOpenAI(api_key="sk-test") as server: OpenAIEmbedder("sk-test", base_url=server.url)`."""

    def __init__(self, api_key: str = "sk-test", *, delay_s: float = 0.0, dimension_override: int | None = None):
        self.api_key = api_key
        self.delay_s = delay_s
        self.dimension_override = dimension_override
        self.requests: list[dict[str, Any]] = []
        self._script: deque[_Scripted] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def fail_next(self, status: int, *, times: int = 1, retry_after: float | None = None, message: str = "") -> None:
        with self._lock:
            for _ in range(times):
                self._script.append(_Scripted(status, retry_after, message or f"scripted failure {status}"))

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def _respond(self, body: dict[str, Any], auth: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        if auth != f"Bearer {self.api_key}":
            return 401, _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"), {}
        with self._lock:
            self.requests.append(body)
            scripted = self._script.popleft() if self._script else None
        if self.delay_s:
            time.sleep(self.delay_s)
        if scripted is not None:
            headers = {"Retry-After": str(scripted.retry_after)} if scripted.retry_after is not None else {}
            return scripted.status, _error(scripted.message, "server_error", None), headers
        model = body.get("model")
        inputs = body.get("input")
        if model not in KNOWN_DIMENSIONS:
            return 404, _error(f"The model `{model}` does not exist", "invalid_request_error", "model_not_found"), {}
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            return 400, _error("'input' must be a non-empty string or array", "invalid_request_error", None), {}
        if len(inputs) > MAX_INPUTS_PER_REQUEST:
            return (
                400,
                _error(f"'input' has more than {MAX_INPUTS_PER_REQUEST} items", "invalid_request_error", None),
                {},
            )
        if any(not isinstance(t, str) or not t for t in inputs):
            return 400, _error("'input' cannot contain an empty string", "invalid_request_error", None), {}
        dimension = self.dimension_override or int(body.get("dimensions") or KNOWN_DIMENSIONS[model])
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(t, dimension)} for i, t in enumerate(inputs)
        ]
        data.reverse()  # the API does not promise order; clients must sort by index
        tokens = sum(estimate_tokens(t) for t in inputs)
        payload = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return 200, payload, {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/embeddings":
                    self._send(404, _error(f"Unknown path {self.path}", "invalid_request_error", None), {})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._send(400, _error("We could not parse the JSON body", "invalid_request_error", None), {})
                    return
                self._send(*fake._respond(body, self.headers.get("Authorization")))

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                raw = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def _error(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
