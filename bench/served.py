"""A served store for the HTTP benchmarks: the environment, the sample corpus, a key, `ragstore serve`.

Shared by `load.py`, `soak.py` and `redis_restart.py`, so that every HTTP benchmark starts its server the
same way (a fresh data directory, the sample corpus, limits no run reaches) and a change to how the server
is started is made once. `serving_process` also hands back the `Popen`, because the soak samples the
server's processes (RSS, open files) and the Redis restart bench needs nothing more than the address.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RAGSTORE = str(Path(sys.executable).with_name("ragstore"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_schema(url: str | None) -> Iterator[str | None]:
    """A fresh schema for the run (dropped afterwards), selected by search_path in the URL."""
    if url is None:
        yield None
        return
    import psycopg
    from sqlalchemy import make_url

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            make_url(url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def store_env(data_dir: Path, database_url: str | None, redis_url: str | None, *, keyed: bool) -> dict[str, str]:
    """The server's environment: nothing of the caller's RAGSTORE_* settings, logs at WARNING.

    Unkeyed, the server binds to loopback with RAGSTORE_AUTH=off (what load.py measures is search).
    Keyed, auth is required under limits no run reaches, so each request pays the check and the counting
    but is never refused."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGSTORE_", "DATABASE_URL", "REDIS_URL"))}
    if "RAGSTORE_EMBEDDING_ENGINE" in os.environ:  # the engine under test (bench/load.py compares them)
        env["RAGSTORE_EMBEDDING_ENGINE"] = os.environ["RAGSTORE_EMBEDDING_ENGINE"]
    env.update(RAGSTORE_DATA_DIR=str(data_dir), RAGSTORE_LOG_LEVEL="WARNING", RAGSTORE_AUTH="off")
    if keyed:
        env.update(
            RAGSTORE_AUTH="required",
            RAGSTORE_RATE_LIMIT_DEFAULT="100000000/minute",
            MAX_CONCURRENT_REQUESTS="10000",
        )
    if database_url:
        env["DATABASE_URL"] = database_url
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def load_samples(env: dict[str, str]) -> None:
    """`ragstore init`, then the sample corpus into the collection `samples`."""
    subprocess.run([RAGSTORE, "init"], env=env, check=True, capture_output=True)
    corpus = str(ROOT / "samples" / "corpus")
    subprocess.run([RAGSTORE, "ingest", corpus, "-c", "samples"], env=env, check=True, capture_output=True)


def create_key(env: dict[str, str], role: str, collection: str | None = None) -> dict[str, str]:
    """A new key of `role` (on `collection`, or every collection) as the headers a client sends."""
    cmd = [RAGSTORE, "keys", "create", "--name", f"bench-{role}", "--role", role, "--json"]
    if collection:
        cmd += ["--collection", collection]
    made = subprocess.run(cmd, env=env, check=True, capture_output=True)
    return {"Authorization": f"Bearer {json.loads(made.stdout)['key']}"}


@contextmanager
def serving_process(
    env: dict[str, str], port: int, workers: int = 1, log: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`ragstore serve` on 127.0.0.1:`port` with `env`, once /health answers, and its process; stopped on exit.

    `log` takes the server's stderr: a run of minutes must not leave it in a pipe nobody reads, whose full
    buffer would stop the server at its next warning."""
    cmd = [RAGSTORE, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    stderr = log.open("wb") if log else subprocess.PIPE
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                said = log.read_text() if log else proc.stderr.read().decode() if proc.stderr else ""
                raise SystemExit(f"server exited: {said}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server did not start within 120 s")
            time.sleep(0.2)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            stderr.close()  # type: ignore[union-attr]


@contextmanager
def serving(env: dict[str, str], port: int, workers: int = 1) -> Iterator[str]:
    """`ragstore serve` on 127.0.0.1:`port` with `env`, once /health answers; stopped on exit."""
    with serving_process(env, port, workers) as (base, _):
        yield base
