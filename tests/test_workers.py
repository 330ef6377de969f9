"""Worker processes: `ragstore worker` claims outbox operations under leases, on SQLite and PostgreSQL.

Applications are counted from the workers' own log lines ("applying sync operation N"), so the count is
what the processes did, not what the database says afterwards.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, update

from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.db.models import ChunkStatus, DocumentChunk, OpState, SyncOperation
from ragstore.service import RagStore

ROOT = Path(__file__).resolve().parent.parent
RAGSTORE = Path(sys.executable).parent / "ragstore"
DIM = 16
APPLYING = re.compile(r"applying sync operation (\d+)")


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["RAGSTORE_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    env.update(extra)
    return env


@contextmanager
def worker_processes(settings: Settings, count: int, logs: Path, **env: str) -> Iterator[list[Path]]:
    """Start `count` `ragstore worker` processes; yield their log files once every one is ready."""
    procs: list[subprocess.Popen[bytes]] = []
    paths = [logs / f"worker-{n}.log" for n in range(count)]
    full_env = child_env(settings, RAGSTORE_LOG_LEVEL="DEBUG", RAGSTORE_SYNC_POLL_INTERVAL_S="0.02", **env)
    try:
        for path in paths:
            with path.open("wb") as log_file:
                procs.append(subprocess.Popen([str(RAGSTORE), "worker"], stderr=log_file, env=full_env))
        deadline = time.monotonic() + 60
        while not all(" ready " in p.read_text() for p in paths):
            assert all(proc.poll() is None for proc in procs), [p.read_text()[-2000:] for p in paths]
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.05)
        yield paths
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def queue_documents(store: RagStore, n: int, seed: int = 0) -> None:
    """n documents with their own vectors, each its own outbox operation, left for the workers."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        vector = rng.normal(size=DIM).astype(np.float32).tolist()
        store.documents.add(
            "kb",
            [{"text": f"document {seed}-{i}", "chunks": [{"text": f"document {seed}-{i}", "vector": vector}]}],
            wait=False,
        )


def wait_until_applied(store: RagStore, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while store.components.applier.has_pending():
        assert time.monotonic() < deadline, f"still pending: {store.index.outbox_counts()}"
        time.sleep(0.05)


def applied_ids(log: Path) -> list[int]:
    return [int(m) for m in APPLYING.findall(log.read_text())]


@pytest.fixture
def synthetic(make_settings: Callable[..., Settings], embedder: Any) -> Iterator[RagStore]:
    with RagStore.open(make_settings(), embedder=embedder) as store:
        store.collections.create("kb", embedding_model="synthetic", dimension=DIM)
        yield store


@pytest.mark.timeout(240)
def test_two_worker_processes_never_apply_the_same_operation_twice(synthetic: RagStore, tmp_path: Path) -> None:
    with worker_processes(synthetic.settings, 2, tmp_path) as logs:
        queue_documents(synthetic, 300)
        wait_until_applied(synthetic)
    per_worker = [applied_ids(log) for log in logs]
    everything = Counter(i for ids in per_worker for i in ids)
    with synthetic.db.read() as s:
        done = set(s.scalars(select(SyncOperation.id).where(SyncOperation.state == OpState.DONE)))
        statuses = Counter(s.scalars(select(DocumentChunk.status)))
    assert everything and max(everything.values()) == 1, [i for i, n in everything.items() if n > 1]
    assert set(everything) == done and len(done) == 300
    assert all(per_worker), f"one worker applied nothing: {[len(ids) for ids in per_worker]}"
    assert statuses == {ChunkStatus.INDEXED: 300}
    # This process never applied anything, yet its replica follows: every document is found by its vector.
    hit = synthetic.search("kb", vector=np.ones(DIM).tolist(), k=300)
    assert len(hit.hits) == 300


@pytest.mark.timeout(240)
def test_a_worker_killed_holding_leases_is_replaced(synthetic: RagStore, tmp_path: Path) -> None:
    queue_documents(synthetic, 40)
    env = child_env(synthetic.settings)
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "claim_child.py"), str(synthetic.settings.data_dir)],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert child.stdout is not None
    assert child.stdout.readline().decode().strip() == "claimed 40"
    with synthetic.db.read() as s:
        owners = set(s.scalars(select(SyncOperation.lease_owner)))
    assert len(owners) == 1 and f":{child.pid}:" in str(owners.pop())
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    with worker_processes(synthetic.settings, 1, tmp_path) as logs:
        wait_until_applied(synthetic, timeout_s=60)  # not the child's one-hour lease: its owner is dead
    assert sorted(applied_ids(logs[0])) == sorted(set(applied_ids(logs[0])))
    assert len(applied_ids(logs[0])) == 40
    assert len(synthetic.search("kb", vector=np.ones(DIM).tolist(), k=100).hits) == 40


@pytest.mark.timeout(240)
def test_a_running_worker_takes_over_from_a_process_that_dies_beside_it(synthetic: RagStore, tmp_path: Path) -> None:
    queue_documents(synthetic, 10)
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "claim_child.py"), str(synthetic.settings.data_dir)],
        stdout=subprocess.PIPE,
        env=child_env(synthetic.settings),
    )
    assert child.stdout is not None
    assert child.stdout.readline().decode().strip() == "claimed 10"
    with worker_processes(synthetic.settings, 1, tmp_path, RAGSTORE_INDEX_PERSIST_INTERVAL_S="0.5") as logs:
        time.sleep(1.0)
        assert synthetic.index.outbox_counts().pending == 10  # the live child's leases are respected
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        wait_until_applied(synthetic, timeout_s=30)  # the worker notices the death, not the one-hour lease
    assert len(applied_ids(logs[0])) == 10


def test_a_lapsed_lease_of_another_host_is_taken_over(synthetic: RagStore) -> None:
    queue_documents(synthetic, 5)
    clock = ManualClock()  # after the writes: their operations are due by this clock
    synthetic.components.applier.clock = clock

    def lease_elsewhere(s: Any) -> None:
        s.execute(
            update(SyncOperation).values(
                lease_owner="another-host:4242:cafe", lease_expires_at=clock.now() + timedelta(seconds=1.5)
            )
        )

    synthetic.db.write(lease_elsewhere)
    assert synthetic.components.applier.release_dead_leases() == 0  # another host's process: its lease must lapse
    assert synthetic.components.applier.claim(ignore_schedule=True) == []
    clock.advance(1.4)
    assert synthetic.components.applier.claim(ignore_schedule=True) == []  # not yet
    clock.advance(0.2)
    assert synthetic.index.sync_now().applied == 5
    assert not synthetic.components.applier.has_pending()


def test_worker_once_drains_the_outbox_and_due_jobs(synthetic: RagStore) -> None:
    queue_documents(synthetic, 3)
    job = synthetic.jobs.enqueue("rebuild_index", {"collection": "kb"})
    bad = synthetic.jobs.enqueue("ingest_documents", {"collection": "kb", "documents": "not a list"}, max_attempts=1)
    env = child_env(synthetic.settings)
    proc = subprocess.run([str(RAGSTORE), "worker", "--once"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert '"applied": 3' in proc.stdout and '"jobs_run": 2' in proc.stdout
    assert not synthetic.components.applier.has_pending()
    states = {row.id: row for row in synthetic.jobs.list()}
    assert states[job].state == "done" and states[job].result == {"rebuilt": {"kb": 3}}
    assert states[bad].state == "dead" and "list of documents" in (states[bad].last_error or "")
