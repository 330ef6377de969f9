"""Private, throw-away servers for the fault tests: a Redis and a PostgreSQL cluster of the test's own,
which a test may stop, kill and restart without touching the machine's shared servers, and a Chroma server
(`chroma run`) for the vector backend suite and the store-down tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis

__all__ = ["ChromaServer", "PrivatePostgres", "PrivateRedis", "app_in_thread", "free_port", "postgres_bin"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def postgres_bin() -> Path | None:
    """The directory of initdb/pg_ctl, or None (the private cluster then cannot run here)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory, run as the `postgres` user (the server refuses root)."""

    def __init__(self) -> None:
        bindir = postgres_bin()
        if bindir is None or shutil.which("runuser") is None or os.geteuid() != 0:
            raise RuntimeError("a private PostgreSQL cluster needs the server binaries, root and runuser")
        self.bindir = bindir
        # Not under pytest's tmp_path: that is private to root, and the server runs as `postgres`.
        self.workdir = Path(tempfile.mkdtemp(prefix="ragstore-test-pg-"))
        shutil.chown(self.workdir, "postgres")
        self.datadir = self.workdir / "pgdata"
        self.port = free_port()
        self._as_postgres(str(bindir / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr.strip() or done.stdout.strip()}")

    def _ctl(self, action: str, *extra: str) -> None:
        self._as_postgres(
            str(self.bindir / "pg_ctl"),
            action,
            "-D",
            str(self.datadir),
            "-w",
            "-l",
            str(self.datadir / "server.log"),
            "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir}",
            *extra,
        )

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        try:
            self._as_postgres(str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


class ChromaServer:
    """`chroma run` as a subprocess on a loopback port, stopped and started on demand."""

    def __init__(self, path: Path, port: int) -> None:
        self.path, self.port = path, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.exe = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))

    @property
    def installed(self) -> bool:
        """False without the `chroma` command (the `chroma` extra): its tests skip."""
        return Path(self.exe).exists()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the Chroma server did not start within 60 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self.proc = None


@contextmanager
def app_in_thread(app: Any) -> Iterator[str]:
    """An ASGI app served by uvicorn on a free loopback port in this process (a browser needs a real
    socket); yields its base URL and stops the server on the way out."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
