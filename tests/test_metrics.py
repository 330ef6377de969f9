"""GET /metrics (issue #20): what it counts, who may read it, that its labels stay bounded, and that the
processes of `ragstore serve --workers 2` are summed.

The event metrics are process-wide (one set of counters per process, as Prometheus expects), so the
in-process tests compare a scrape before and after what they do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ragstore.api.app import create_app
from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.service import RagStore
from ragstore.sync.outbox import queue_operation
from test_processes import on_postgres, server_process

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
DIM = 8


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(client: TestClient | httpx.Client, **headers: str) -> Samples:
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(answer.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    return sum(v for (n, have), v in samples.items() if n == name and set(labels.items()) <= set(have))


def test_metrics_count_requests_searches_statements_and_state(
    make_settings: Callable[..., Settings], embedder: Any
) -> None:
    clock = ManualClock()
    settings = make_settings(companion_model="none")
    with (
        RagStore.open(settings, embedder=embedder, clock=clock) as store,
        TestClient(create_app(store=store)) as client,
    ):
        before_ingest = scrape(client)
        store.collections.create("kb")
        store.documents.add("kb", [{"text": "환불은 구매 후 7일 안에 신청합니다."}, {"text": "배송은 3일 걸립니다."}])
        store.documents.add("kb", [{"text": "배송은 3일 걸립니다."}])  # the same text again: unchanged
        before = scrape(client)
        found = client.post("/v1/collections/kb/search", json={"query": "환불", "k": 5, "mode": "lexical"})
        assert found.status_code == 200 and found.json()["hits"]
        hits = len(found.json()["hits"])
        none = client.post("/v1/collections/kb/search", json={"query": "zebra", "k": 5, "mode": "lexical"})
        assert none.status_code == 200 and none.json()["hits"] == []
        assert client.get("/v1/collections/nope").status_code == 404
        asked = {"query": "배송 기간", "k": 5, "mode": "dense"}
        assert client.post("/v1/collections/kb/search", json=asked).status_code == 200
        assert client.post("/v1/collections/kb/search", json=asked).json()["cached"] is True
        assert value(scrape(client), "ragstore_audit_chain_ok") == -1  # never verified
        store.audit.verify()
        after = scrape(client)

    ingest = {name: total(before, name) - total(before_ingest, name) for name, _ in before}
    assert ingest["ragstore_ingested_documents_total"] == 3
    assert (
        total(before, "ragstore_ingested_documents_total", outcome="added")
        - total(before_ingest, "ragstore_ingested_documents_total", outcome="added")
        == 2
    )
    assert ingest["ragstore_ingested_chunks_total"] == 2
    for stage in ("chunk", "embed", "analyse", "store", "index"):
        assert total(before, "ragstore_ingest_stage_duration_seconds_count", stage=stage) > total(
            before_ingest, "ragstore_ingest_stage_duration_seconds_count", stage=stage
        ), stage
    assert ingest["ragstore_embedding_requests_total"] >= 1

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    backend = settings.vector_backend
    assert grew("ragstore_search_duration_seconds_count", mode="lexical", backend=backend) == 2
    assert grew("ragstore_search_results_total", mode="lexical") == hits
    assert grew("ragstore_search_empty_results_total", mode="lexical") == 1
    search_route = {"route": "/v1/collections/{name}/search", "method": "POST", "status_class": "2xx"}
    assert grew("ragstore_http_request_duration_seconds_count", **search_route) == 4  # two lexical, two dense
    assert grew("ragstore_search_duration_seconds_count", mode="dense", backend=backend) == 2  # one from the cache
    missing = {"route": "/v1/collections/{name}", "method": "GET", "status_class": "4xx"}
    assert grew("ragstore_http_request_duration_seconds_count", **missing) == 1
    assert grew("ragstore_cache_requests_total", layer="search", outcome="hit_local") == 1
    assert grew("ragstore_cache_requests_total", layer="search", outcome="miss") >= 1
    assert grew("ragstore_embedding_requests_total", model=embedder.model) >= 1  # the dense query's embedding
    assert value(after, "ragstore_audit_chain_ok") == 1
    assert value(after, "ragstore_audit_last_verified_timestamp_seconds") == pytest.approx(clock.now().timestamp())
    assert value(after, "ragstore_backup_last_success_age_seconds") == float("inf")  # no backup yet
    assert value(after, "ragstore_consistency_last_check_timestamp_seconds") == 0
    assert total(after, "ragstore_consistency_problems") == 0
    dialect = store.db.engine.dialect.name
    assert grew("ragstore_db_query_duration_seconds_count", dialect=dialect, statement="select") > 0
    assert total(after, "ragstore_build_info", database=dialect, vector_backend=backend) == 1
    assert value(after, "ragstore_vectors", backend=backend) == 2
    assert value(after, "ragstore_outbox_pending_operations") == 0
    assert value(after, "ragstore_outbox_oldest_pending_age_seconds") == 0
    assert {labels for name, labels in after if name == "ragstore_jobs"} >= {
        (("state", "queued"),),
        (("state", "dead"),),
    }
    # No label grows with what users send: neither the collection's name nor the query appears.
    values = {v for _, labels in after for _, v in labels}
    assert not values & {"kb", "nope", "환불", "zebra"}


def test_the_outbox_backlog_and_its_age(make_settings: Callable[..., Settings], embedder: Any) -> None:
    clock = ManualClock()
    with RagStore.open(make_settings(companion_model="none"), embedder=embedder, clock=clock) as store:
        store.collections.create("kb", embedding_model="synthetic", dimension=DIM)
        store.documents.add("kb", [{"text": "a", "chunks": [{"text": "a", "vector": [1.0] * DIM}]}])
        with TestClient(create_app(store=store)) as client:
            store.components.applier.advance()  # whatever the add left for the index is applied now
            assert value(scrape(client), "ragstore_outbox_pending_operations") == 0
            # A pending operation whose age the metric reports by the store's clock.
            coll_id = store.components.catalog.resolve("kb").id

            def add_pending(s: Any) -> None:
                queue_operation(s, coll_id, "upsert", [], lease=False, now=clock.now()).created_at = clock.now()

            store.db.write(add_pending)
            clock.advance(90)
            samples = scrape(client)
    assert value(samples, "ragstore_outbox_pending_operations") == 1
    assert value(samples, "ragstore_outbox_oldest_pending_age_seconds") == pytest.approx(90, abs=1)


def test_metrics_need_the_metrics_role(make_settings: Callable[..., Settings], embedder: Any) -> None:
    with RagStore.open(make_settings(auth="required", companion_model="none"), embedder=embedder) as store:
        keys = {role: store.keys.create(role, role).key for role in ("metrics", "admin", "read", "write")}
        with TestClient(create_app(store=store)) as client:
            assert client.get("/metrics").status_code == 401
            for role, status in (("metrics", 200), ("admin", 200), ("read", 403), ("write", 403)):
                answer = client.get("/metrics", headers={"Authorization": f"Bearer {keys[role]}"})
                assert answer.status_code == status, (role, answer.text)


@on_postgres  # the embedded profile runs one process; several need PostgreSQL
@pytest.mark.timeout(240)
def test_serve_workers_2_sums_both_processes(settings: Settings, tmp_path: Path) -> None:
    with server_process(settings, tmp_path / "serve.log", "--workers", "2", RAGSTORE_COMPANION_MODEL="none") as client:
        made = client.post("/v1/collections", json={"name": "kb", "embedding_model": "synthetic", "dimension": DIM})
        assert made.status_code == 201, made.text
        vector = np.random.default_rng(3).normal(size=DIM).tolist()
        added = client.post(
            "/v1/collections/kb/documents", json={"text": "x", "chunks": [{"text": "x", "vector": vector}]}
        )
        assert added.status_code == 201, added.text
        owners: set[str] = set()
        searches = 0
        while len(owners) < 2 or searches < 40:  # a new connection each time: either process may take it
            assert searches < 400, f"one process answered every request: {owners}"
            with httpx.Client(base_url=client.base_url, timeout=30) as fresh:
                owners.add(fresh.get("/health").json()["components"]["vector_index"]["replica"]["owner"])
                answer = fresh.post("/v1/collections/kb/search", json={"vector": vector, "k": 1, "mode": "dense"})
                assert answer.status_code == 200, answer.text
                searches += 1
        # Whichever process answers the scrape, it reports both processes' searches.
        for _ in range(6):
            with httpx.Client(base_url=client.base_url, timeout=30) as fresh:
                samples = scrape(fresh)
            assert total(samples, "ragstore_search_duration_seconds_count", mode="dense") == searches
            assert total(samples, "ragstore_http_request_duration_seconds_count", route="/health") >= searches


def test_serve_prepares_a_folder_of_its_own_and_removes_those_of_dead_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import tempfile

    from ragstore.cli.metrics_dir import MULTIPROCESS_ENV, PREFIX, prepare_multiprocess_dir

    # Set before it is deleted so that monkeypatch restores it as it was (unset) whatever the call sets: a
    # variable left naming the folder removed below made every later subprocess fail to count its metrics.
    monkeypatch.setenv(MULTIPROCESS_ENV, "unset-after-the-test")
    monkeypatch.delenv(MULTIPROCESS_ENV)
    dead = Path(tempfile.mkdtemp(prefix=f"{PREFIX}999999999-"))  # no process has this id
    living = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    try:
        mine = prepare_multiprocess_dir()
        assert mine.is_dir() and not any(mine.iterdir()) and os.environ[MULTIPROCESS_ENV] == str(mine)
        assert not dead.exists() and living.exists()
    finally:
        for folder in (living, mine):
            folder.rmdir()


def test_a_process_that_inherits_a_removed_metrics_folder_counts_in_memory(tmp_path: Path) -> None:
    """A process started from a server's environment after that server removed its folder (a worker, a CLI
    command) must not fail every count with FileNotFoundError."""
    import os
    import subprocess
    import sys

    gone = tmp_path / "removed"
    code = (
        "import ragstore.telemetry as t; t.SEARCH_RESULTS.labels(mode='dense').inc(); "
        "print(t.multiprocess(), t.SEARCH_RESULTS.labels(mode='dense')._value.get())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(gone)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "1.0"] and not gone.exists()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_pool_overflow_is_reported(make_settings: Callable[..., Settings], embedder: Any) -> None:
    """Connections beyond DATABASE_POOL_SIZE show in `ragstore_db_pool_overflow_connections` while held."""
    from ragstore.db.models import Collection

    settings = make_settings(database_pool_size=1, database_max_overflow=3)
    with (
        RagStore.open(settings, embedder=embedder) as store,
        TestClient(create_app(store=store), base_url="http://127.0.0.1") as client,
    ):
        with store.db.read() as first, store.db.read() as second, store.db.read() as third:
            for s in (first, second, third):  # each session checks a connection out on its first statement
                s.query(Collection.id).first()
            held = value(scrape(client), "ragstore_db_pool_overflow_connections", dialect="postgresql")
            assert held >= 2  # three held beyond a pool of one (the scrape's own may be a third)
        after = value(scrape(client), "ragstore_db_pool_overflow_connections", dialect="postgresql")
        assert after <= 1  # returned: the pool closed the connections beyond its size
