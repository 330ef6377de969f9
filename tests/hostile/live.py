"""A real server for the hostile-input suite: `ragstore serve` in its own process over a throwaway data
directory holding a small collection, so that a test can measure what an attacker's request costs the
process that serves it (its RSS, its answer time) and prove that nothing stored changed.

It runs as shipped, with RAGSTORE_AUTH=required: `ragstore init` makes the admin key (`<data dir>/admin.key`),
and `client()` sends it, so every request an attacker could send with a stolen admin key is exercised.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa

from servers import free_port

COLLECTION = "hostile"
TABLES = ("collections", "documents", "document_chunks", "embeddings", "sync_operations")


@dataclass(frozen=True)
class LiveServer:
    """A served store: its URL, its process and its data directory."""

    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    env: dict[str, str]
    log_path: Path  # the server's stderr (a file, not a pipe: a full pipe would block the server)
    api_key: str  # the admin key `ragstore init` wrote to <data dir>/admin.key

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, headers=self.auth_headers)

    def rss_bytes(self) -> int:
        """Resident memory of the server process now (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def row_counts(self) -> dict[str, int]:
        """Rows in the tables a partial write would leave behind, read straight from the SQLite file."""
        engine = sa.create_engine(f"sqlite:///{self.data_dir / 'ragstore.db'}")
        try:
            with engine.connect() as conn:
                return {t: int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in TABLES}
        finally:
            engine.dispose()

    def check_clean(self) -> None:
        """The consistency check over HTTP finds nothing wrong."""
        with self.client(timeout=300) as client:
            answer = client.post("/admin/consistency", json={})
        assert answer.status_code == 200, answer.text
        assert answer.json()["problems"] == 0, answer.text

    def assert_serves_search(self) -> None:
        with self.client() as client:
            answer = client.post(f"/v1/collections/{COLLECTION}/search", json={"query": "backup", "k": 3})
        assert answer.status_code == 200, answer.text
        assert answer.json()["hits"], answer.text


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ragstore.cli", *args], env=env, check=True, capture_output=True, timeout=600
    )
    return done.stdout.decode()


def create_key(server: LiveServer, role: str, *collections: str) -> str:
    """A new key of `role` (on `collections`, default every one) on the served store, made by the CLI."""
    chosen = [arg for c in collections for arg in ("--collection", c)]
    made = json.loads(_cli(server.env, "keys", "create", "--name", f"test {role}", "--role", role, *chosen, "--json"))
    return str(made["key"])


UNLIMITED = "1000000/minute"


def start_server(data_dir: Path, extra_env: dict[str, str] | None = None) -> LiveServer:
    """Initialise `data_dir`, load three documents into COLLECTION and serve it on a free port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGSTORE_", "DATABASE_URL", "MILVUS_", "CHROMA_"))}
    env.update({"RAGSTORE_DATA_DIR": str(data_dir), "RAGSTORE_API_PORT": str(port), "RAGSTORE_LOG_LEVEL": "WARNING"})
    # Hundreds of requests a minute from one address: not what rate limits are tested with (test_rate_limits.py).
    # Twenty clients share the admin key at once (test_integrity): over the default cap on one key's requests
    # in flight (MAX_CONCURRENT_REQUESTS), which test_rate_limits.py tests.
    env.update({"RAGSTORE_RATE_LIMIT_ANONYMOUS": UNLIMITED, "RAGSTORE_RATE_LIMIT_DEFAULT": UNLIMITED})
    env.update({"MAX_CONCURRENT_REQUESTS": "1000"})
    env.update(extra_env or {})
    docs = data_dir.parent / f"{data_dir.name}-docs"
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "backup.md").write_text("# Backups\n\nA verified backup restores the store and its vectors together.\n")
    (docs / "search.md").write_text("# Search\n\nHybrid search fuses dense and lexical results.\n")
    (docs / "ko.md").write_text("# 전세 계약\n\n전세 계약을 갱신할 때 확인할 사항을 정리합니다.\n")
    _cli(env, "init")
    api_key = (data_dir / "admin.key").read_text().strip()
    _cli(env, "ingest", str(docs), "--collection", COLLECTION)
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ragstore.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code < 500:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("server did not answer /health within 120 s")
        time.sleep(0.2)
    return LiveServer(url=url, process=process, data_dir=data_dir, env=env, log_path=log_path, api_key=api_key)


def stop_server(server: LiveServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
