"""`ragstore worker --metrics-port`: a worker's own event metrics, behind the same key rule as the API's
GET /metrics (runtime/worker_metrics.py), served by a real worker process on both databases."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ragstore.config import Settings
from ragstore.runtime.worker_metrics import WorkerMetricsServer
from ragstore.service import RagStore
from servers import free_port

RAGSTORE = Path(sys.executable).parent / "ragstore"


def child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(RAGSTORE_DATA_DIR=str(settings.data_dir), RAGSTORE_AUTH="required", RAGSTORE_SYNC_POLL_INTERVAL_S="0.05")
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    return env


def samples(text: str, name: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples if s.name == name)


def test_a_running_worker_serves_its_own_counts_to_a_metrics_key(
    make_settings: Callable[..., Settings], embedder: Any, tmp_path: Path
) -> None:
    settings = make_settings(auth="required")
    with RagStore.open(settings, embedder=embedder) as store:
        metrics_key = store.keys.create("prometheus", "metrics").key
        read_key = store.keys.create("reader", "read").key
        store.collections.create("kb")
    port = free_port()
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [str(RAGSTORE), "worker", "--no-jobs", "--metrics-port", str(port)], env=child_env(settings), stderr=log
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        answer: httpx.Response | None = None
        for _ in range(600):  # the worker opens its store first (a few seconds on a busy machine)
            try:
                answer = httpx.get(url, headers={"Authorization": f"Bearer {metrics_key}"}, timeout=5)
                if samples(answer.text, "ragstore_db_query_duration_seconds_count") > 0:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.1)
        assert answer is not None and answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        # What the worker did (its polling of the outbox), in its own process; no state metric of the store.
        assert samples(answer.text, "ragstore_db_query_duration_seconds_count") > 0
        assert "ragstore_outbox_pending_operations" not in answer.text and "ragstore_build_info" not in answer.text
        assert httpx.get(url, timeout=5).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer rsk_nope"}, timeout=5).status_code == 401
        assert httpx.get(url, headers={"Authorization": f"Bearer {read_key}"}, timeout=5).status_code == 403
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 404
        assert httpx.post(url, headers={"Authorization": f"Bearer {metrics_key}"}, timeout=5).status_code == 405
    finally:
        proc.terminate()
        assert proc.wait(60) == 0, (tmp_path / "worker.log").read_text()
        log.close()


@pytest.mark.parametrize("database_url", [None], ids=["sqlite"])
def test_bad_metrics_options_exit_2_with_one_line(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = make_settings()
    RagStore.open(settings).close()
    env = child_env(settings)
    once = subprocess.run(
        [str(RAGSTORE), "worker", "--once", "--metrics-port", "9999"], env=env, capture_output=True, text=True
    )
    assert once.returncode == 2 and "--once" in once.stderr and len(once.stderr.strip().splitlines()) == 1
    with RagStore.open(settings) as store:
        taken = WorkerMetricsServer(store, "127.0.0.1", 0).start()
        try:
            busy = subprocess.run(
                [str(RAGSTORE), "worker", "--metrics-port", str(taken.port)], env=env, capture_output=True, text=True
            )
        finally:
            taken.stop()
    assert busy.returncode == 2 and f"cannot serve metrics on 127.0.0.1:{taken.port}" in busy.stderr
