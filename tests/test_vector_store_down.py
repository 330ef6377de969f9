"""A vector store that goes down loses no write: a real Chroma server is stopped mid-run and started again.

While it is down the document is stored, its chunks stay pending, the API answers with the document and its
state, health says the index is degraded; when it returns the worker catches up and the check is clean.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ragstore import RagStore
from ragstore.api.app import create_app
from ragstore.config import Settings
from servers import ChromaServer, free_port

from conftest import CountingEmbedder


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[ChromaServer]:
    if not Path(ChromaServer(tmp_path, 0).exe).exists():
        pytest.skip("the chroma command (ragstore[chroma]) is not installed")
    server = ChromaServer(tmp_path / "chroma-server", free_port())
    server.start()
    yield server
    server.stop()


def chroma_settings(make_settings: Callable[..., Settings], server: ChromaServer) -> Settings:
    """A store on the Chroma server whose worker retries quickly and never gives up within a test."""
    return make_settings(
        vector_backend="chroma",
        chroma_url=f"http://127.0.0.1:{server.port}",
        sync_poll_interval_s=0.2,
        sync_backoff_base_s=0.2,
        sync_backoff_max_s=1.0,
        sync_max_attempts=100,
    )


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def test_a_write_while_chroma_is_down_is_kept_and_indexed_when_it_returns(
    chroma_server: ChromaServer, make_settings: Callable[..., Settings], embedder: CountingEmbedder
) -> None:
    settings = chroma_settings(make_settings, chroma_server)
    with (
        RagStore.open(settings, embedder=embedder, start_worker=True) as store,
        TestClient(create_app(store=store)) as client,
    ):
        assert client.post("/v1/collections", json={"name": "kb"}).status_code == 201
        first = client.post("/v1/collections/kb/documents", json={"text": "김치는 배추로 담근다.", "title": "kimchi"})
        assert first.status_code == 201 and first.json()["documents"][0]["index_state"] == "indexed"

        chroma_server.stop()
        second = client.post(
            "/v1/collections/kb/documents", json={"text": "The refund arrives within seven days.", "title": "refund"}
        )
        assert second.status_code == 201, second.text
        stored = second.json()["documents"][0]
        assert stored["status"] == "added" and stored["index_state"] == "pending"
        health = client.get("/health").json()
        assert health["components"]["vector_index"]["status"] == "degraded"
        assert (
            "chroma" in (health["components"]["vector_index"]["last_error"] or "").lower()
            or health["components"]["vector_index"]["retrying_operations"]
        )
        listed = client.get("/v1/collections/kb/documents").json()
        assert {d["title"] for d in listed} == {"kimchi", "refund"}
        # The lexical side still answers from SQL; the pending chunk is not shown until it is indexed.
        assert client.post("/v1/collections/kb/search", json={"query": "김치", "mode": "lexical"}).status_code == 200

        chroma_server.start()
        wait_until(
            lambda: (
                client.get(f"/v1/collections/kb/documents/{stored['document_id']}").json()["index_state"] == "indexed"
            )
        )
        hits = client.post("/v1/collections/kb/search", json={"query": "refund days", "mode": "dense", "k": 1}).json()
        assert hits["hits"][0]["title"] == "refund"
        assert client.get("/health").json()["components"]["vector_index"]["status"] == "ok"
        report = store.consistency.check()
        assert report is not None and report.problems == 0


def test_a_store_opens_while_chroma_is_down_and_catches_up_when_it_starts(
    chroma_server: ChromaServer, make_settings: Callable[..., Settings], embedder: CountingEmbedder
) -> None:
    settings = chroma_settings(make_settings, chroma_server)
    with RagStore.open(settings, embedder=embedder) as store:
        store.collections.create("kb")
        store.documents.add_text("kb", "김치는 배추로 담근다.", title="kimchi")
    chroma_server.stop()
    with RagStore.open(settings, embedder=embedder, start_worker=True) as store:  # the server restarts meanwhile
        assert store.recovery.index_unavailable is not None
        added = store.documents.add_text("kb", "The refund arrives within seven days.", title="refund")
        assert added.status == "added" and added.index_state == "pending"
        assert store.ops.health().components.vector_index.status == "degraded"
        chroma_server.start()
        wait_until(lambda: store.documents.get("kb", added.document_id).index_state == "indexed")  # type: ignore[arg-type]
        assert store.search("kb", "refund days", k=1, mode="dense").hits[0].title == "refund"
        assert store.search("kb", "김치 담그기", k=1, mode="dense").hits[0].title == "kimchi"
        report = store.consistency.check()
        assert report is not None and report.problems == 0
