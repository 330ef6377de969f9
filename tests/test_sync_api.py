"""`POST /v1/collections/{name}/sync` and the `sync_paths` job (issue 17): admin only, folders under
RAGSTORE_SYNC_ROOTS only, a dry run answered at once, a real sync queued as a job."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ragstore import RagStore, Settings
from ragstore.api.app import create_app
from ragstore.runtime.handlers import HANDLERS

from conftest import CountingEmbedder


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("# Refunds\n\nRefunds are possible within 30 days.\n", encoding="utf-8")
    (root / "sub" / "b.txt").write_text("The business plan allows 600 requests a minute.\n", encoding="utf-8")
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return _tree(tmp_path / "allowed" / "tree")


@pytest.fixture
def client(make_settings: Callable[..., Settings], embedder: CountingEmbedder, tree: Path) -> Iterator[TestClient]:
    settings = make_settings(sync_roots=str(tree.parent))
    with RagStore.open(settings, embedder=embedder) as opened, TestClient(create_app(store=opened)) as test_client:
        test_client.post("/v1/collections", json={"name": "kb"})
        yield test_client


def _finished(client: TestClient, url: str, timeout_s: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(url)
        assert job.status_code == 200, job.text
        if job.json()["state"] in ("done", "dead") or time.monotonic() > deadline:
            return dict(job.json())
        time.sleep(0.2)


def test_dry_run_then_a_sync_job(client: TestClient, tree: Path) -> None:
    dry = client.post("/v1/collections/kb/sync", json={"paths": [str(tree)], "root": str(tree), "dry_run": True})
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True
    assert sorted((o["source_uri"], o["status"]) for o in dry.json()["outcomes"]) == [
        ("a.md", "added"),
        ("sub/b.txt", "added"),
    ]
    assert client.get("/v1/collections/kb").json()["document_count"] == 0
    accepted = client.post("/v1/collections/kb/sync", json={"paths": [str(tree)], "root": str(tree)})
    assert accepted.status_code == 202 and accepted.headers["location"] == accepted.json()["status_url"]
    job = _finished(client, accepted.json()["status_url"])
    assert job["state"] == "done" and job["result"]["added"] == 2
    (tree / "sub" / "b.txt").unlink()
    job = _finished(
        client,
        client.post("/v1/collections/kb/sync", json={"paths": [str(tree)], "root": str(tree)}).json()["status_url"],
    )
    assert (job["result"]["deleted"], job["result"]["unchanged"]) == (1, 1)
    assert client.get("/v1/collections/kb").json()["document_count"] == 1


def test_paths_outside_the_roots_and_unknown_collections(client: TestClient, tmp_path: Path) -> None:
    outside = _tree(tmp_path / "outside")
    for paths in (
        [str(outside)],
        [str(outside / "..")],
        ["relative/path"],
        [str(tmp_path / "allowed" / ".." / "outside")],
    ):
        answer = client.post("/v1/collections/kb/sync", json={"paths": paths, "dry_run": True})
        assert answer.status_code == 403 and "RAGSTORE_SYNC_ROOTS" in answer.json()["error"]["message"], paths
    missing = client.post("/v1/collections/nope/sync", json={"paths": [str(tmp_path / "allowed")], "dry_run": True})
    assert missing.status_code == 404
    assert client.post("/v1/collections/kb/sync", json={"paths": []}).status_code == 422


def test_a_symlink_or_a_glob_cannot_lead_outside_the_roots(client: TestClient, tree: Path, tmp_path: Path) -> None:
    """The fixed part of a path is under a root, but what it finds is not: each file is checked as it is found."""
    outside = _tree(tmp_path / "outside")
    (tree / "sub" / "secret.md").symlink_to(outside / "a.md")
    answer = client.post("/v1/collections/kb/sync", json={"paths": [str(tree)], "dry_run": True})
    assert answer.status_code == 403, answer.text
    assert "secret.md: leads outside RAGSTORE_SYNC_ROOTS" in answer.json()["error"]["message"]
    (tree / "sub" / "secret.md").unlink()
    climbing = str(tree / "*" / ".." / ".." / ".." / "outside" / "*.md")
    answer = client.post("/v1/collections/kb/sync", json={"paths": [climbing], "dry_run": True})
    assert answer.status_code == 403 and "'..' is not allowed" in answer.json()["error"]["message"]
    assert client.get("/v1/collections/kb").json()["document_count"] == 0


def test_disabled_without_sync_roots(
    make_settings: Callable[..., Settings], embedder: CountingEmbedder, tree: Path
) -> None:
    with RagStore.open(make_settings(), embedder=embedder) as opened, TestClient(create_app(store=opened)) as client:
        client.post("/v1/collections", json={"name": "kb"})
        answer = client.post("/v1/collections/kb/sync", json={"paths": [str(tree)]})
        assert answer.status_code == 403 and "RAGSTORE_SYNC_ROOTS" in answer.json()["error"]["message"]


def test_the_job_handler_directly(store: RagStore, tree: Path) -> None:
    store.collections.create("kb")
    steps: list[tuple[int, int]] = []
    result = HANDLERS["sync_paths"](
        store, {"collection": "kb", "paths": [str(tree)]}, lambda d, t: steps.append((d, t))
    )
    assert result["added"] == 2 and steps[-1] == (2, 2)
    again = HANDLERS["sync_paths"](store, {"collection": "kb", "paths": [str(tree)]}, lambda d, t: None)
    assert again["unchanged"] == 2 and again["added"] == 0
