"""Hostile requests against a served store: oversized bodies, deep JSON, long queries, forged cross-site writes.

Each is answered with its documented 4xx within a time bound, the server's memory stays within a stated
bound where memory is the attack, nothing is stored, the check stays clean and a normal search still works.
Inputs are generated here, never committed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from live import COLLECTION, LiveServer

MIB = 1024 * 1024
RSS_BOUND = 100 * MIB  # what one refused request may add to the server's resident memory


def chunked_post(
    server: LiveServer, path: str, head: bytes, filler: Iterator[bytes], headers: str
) -> tuple[int, bytes]:
    """POST a body with chunked transfer encoding until the server answers; (status, body).

    The server answers (and closes) while the client is still sending, so the answer is looked for between
    chunks: a client that only read after sending 1 GiB would be told nothing.
    """
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=30)
    answer = b""
    try:
        key = f"Authorization: Bearer {server.api_key}\r\n"
        start = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n{key}{headers}\r\n"
        sock.sendall(start.encode())
        sock.setblocking(False)
        for chunk in (head, *filler):
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            if answer:
                break
            data = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            try:
                sock.setblocking(True)
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                break
            finally:
                sock.setblocking(False)
        sock.setblocking(True)
        sock.settimeout(30)
        while b"\r\n\r\n" not in answer or len(answer) < answer.find(b"\r\n\r\n") + 4 + _length(answer):
            try:
                more = sock.recv(65536)
            except ConnectionResetError:
                break
            if not more:
                break
            answer += more
    finally:
        sock.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def gigabyte(chunk: bytes) -> Iterator[bytes]:
    for _ in range(1024**3 // len(chunk)):
        yield chunk


@pytest.mark.parametrize(
    ("path", "head", "content_type"),
    [
        (f"/v1/collections/{COLLECTION}/search", b'{"query": "', "application/json"),
        ("/v1/collections", b'{"name": "big", "description": "', "application/json"),
        (f"/v1/collections/{COLLECTION}/search", b'{"vector": [', "application/json"),
        (
            f"/v1/collections/{COLLECTION}/documents",
            b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n',
            "multipart/form-data; boundary=x",
        ),
    ],
    ids=["1GiB-query", "1GiB-description", "1GiB-vector", "1GiB-upload"],
)
def test_gigabyte_bodies_are_413_at_once(
    live_server: LiveServer, unchanged: None, path: str, head: bytes, content_type: str
) -> None:
    filler = b"0.123456789," * 5461 if b"vector" in head else b"a" * 65536
    rss = live_server.rss_bytes()
    started = time.monotonic()
    status, body = chunked_post(
        live_server, path, head, gigabyte(filler), f"Content-Type: {content_type}\r\nX-Requested-With: test\r\n"
    )
    elapsed = time.monotonic() - started
    assert status == 413, body
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert elapsed < 10, elapsed
    assert live_server.rss_bytes() - rss < RSS_BOUND


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/collections", {"name": "big", "description": "d" * (256 * MIB)}),
        (f"/v1/collections/{COLLECTION}/search", {"vector": [0.5] * (64 * MIB // 4)}),
    ],
    ids=["256MiB-description", "64MiB-vector"],
)
def test_large_declared_bodies_are_413(live_server: LiveServer, unchanged: None, path: str, body: object) -> None:
    data = json.dumps(body).encode()
    del body
    rss = live_server.rss_bytes()
    started = time.monotonic()
    with live_server.client() as client:
        try:
            answer = client.post(path, content=data, headers={"content-type": "application/json"})
        except Exception as exc:  # the server may close while the client still sends; then say so
            pytest.fail(f"no answer: {exc!r}")
    assert answer.status_code == 413, answer.text
    assert time.monotonic() - started < 20
    assert live_server.rss_bytes() - rss < RSS_BOUND


def test_hundred_thousand_deep_json_is_422(live_server: LiveServer, unchanged: None) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with live_server.client() as client:
        for path in ("/v1/collections", f"/v1/collections/{COLLECTION}/search", "/admin/consistency"):
            started = time.monotonic()
            answer = client.post(path, content=deep, headers={"content-type": "application/json"})
            assert answer.status_code == 422, answer.text
            assert "RAGSTORE_MAX_JSON_DEPTH" in answer.json()["error"]["message"]
            assert time.monotonic() - started < 2


def test_a_long_query_costs_about_a_short_one(live_server: LiveServer, unchanged: None) -> None:
    """10,000 characters (each query new, so nothing is cached) against a few words."""

    def latency(text: str) -> float:
        started = time.perf_counter()
        with live_server.client() as client:
            answer = client.post(f"/v1/collections/{COLLECTION}/search", json={"query": text, "mode": "dense"})
        assert answer.status_code == 200, answer.text
        return time.perf_counter() - started

    short = statistics.median(latency(f"backup restore {i}") for i in range(5))
    long = statistics.median(latency((f"{i} " + "backup restore vectors search " * 330)[:10_000]) for i in range(5))
    # The cut query is at most 64 estimated tokens (256 characters): tens of ms more than three words, not 12.7 s.
    assert long < short + 0.5, (short, long)
    with live_server.client() as client:
        body = client.post(
            f"/v1/collections/{COLLECTION}/search", json={"query": "backup " * 1400, "mode": "dense"}
        ).json()
    assert body["query_truncated"] is True and body["query_chars_used"] < 1000


def test_cross_site_writes_and_foreign_hosts_are_refused(live_server: LiveServer, unchanged: None) -> None:
    evil = {"origin": "http://evil.example"}
    with live_server.client() as client:
        form = client.post("/admin/consistency/repair", data={"collection": COLLECTION}, headers=evil)
        assert form.status_code == 415 and form.json()["error"]["code"] == "unsupported_media_type"
        assert client.post("/admin/backup/trigger", headers=evil).status_code == 415
        upload = client.post(
            f"/v1/collections/{COLLECTION}/documents", files={"file": ("evil.txt", b"forged")}, headers=evil
        )
        assert upload.status_code == 403 and upload.json()["error"]["code"] == "forbidden"
        rebound = client.post(
            f"/v1/collections/{COLLECTION}/search", json={"query": "backup"}, headers={"host": "evil.example"}
        )
        assert rebound.status_code == 400 and rebound.json()["error"]["code"] == "bad_request"
        preflight = client.options(
            "/v1/collections", headers={**evil, "access-control-request-method": "POST"}
        )  # CORS is off by default
        assert "access-control-allow-origin" not in preflight.headers
