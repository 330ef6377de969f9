"""Background ingest over HTTP: `?wait=false` answers 202 with a job, the job records progress that tells the
truth (documents and chunks, a rate, an estimate), jobs are listed per collection to those who may write it,
and a job run twice stores nothing twice.

The server's runner is replaced by one that is never started: a test runs it a job at a time (`run_one`),
and time is a ManualClock that an embedder moves while it works, so nothing sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from typer.testing import CliRunner

from ragstore import RagStore
from ragstore.api.app import create_app
from ragstore.api.ingest_jobs import KIND
from ragstore.cli import app as cli_app
from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.embeddings.base import EmbedKind
from ragstore.runtime import handlers
from ragstore.runtime.job_runner import JobRunner
from ragstore.runtime.worker import run_once

from conftest import CountingEmbedder

KOREAN = "# 전세 계약\n\n전세 계약을 갱신하기 전에 등기부등본과 확정일자를 확인해야 한다.\n"


@dataclass
class SteppingEmbedder:
    """The real model; each call first moves the clock by `step_s` (embedding takes time) and then runs
    `during` (a test's look at the job while it runs)."""

    inner: CountingEmbedder
    clock: ManualClock
    step_s: float = 0.0
    during: Callable[[], None] | None = None
    fail_after: int | None = None  # calls allowed before the model "crashes" (None: never)
    calls: int = 0
    backend: str = field(init=False)
    model: str = field(init=False)
    dimension: int = field(init=False)

    def __post_init__(self) -> None:
        self.backend, self.model, self.dimension = self.inner.backend, self.inner.model, self.inner.dimension

    def embed(self, texts: Sequence[str], *, kind: EmbedKind) -> NDArray[np.float32]:
        if kind == "document":
            self.calls += 1
            if self.fail_after is not None and self.calls > self.fail_after:
                raise RuntimeError("the embedding process was killed")
            self.clock.advance(self.step_s)
            if self.during is not None:
                self.during()
        return self.inner.embed(texts, kind=kind)


@dataclass
class Background:
    store: RagStore
    client: TestClient
    runner: JobRunner
    clock: ManualClock
    embedder: SteppingEmbedder


def _open(settings: Settings, embedder: CountingEmbedder) -> Iterator[Background]:
    clock = ManualClock()
    stepping = SteppingEmbedder(embedder, clock)
    with RagStore.open(settings, embedder=stepping, clock=clock) as store:  # type: ignore[arg-type]
        app = create_app(store=store)
        # The server's own runner, never started: the test runs it a job at a time.
        runner = JobRunner(store, threads=1, handlers={KIND: handlers.HANDLERS[KIND]})
        app.state.job_runners = {KIND: runner}
        with TestClient(app, headers={"x-requested-with": "ragstore-tests"}) as client:
            yield Background(store, client, runner, clock, stepping)


@pytest.fixture
def bg(make_settings: Callable[..., Settings], embedder: CountingEmbedder) -> Iterator[Background]:
    for opened in _open(make_settings(), embedder):
        opened.store.collections.create("kb")
        yield opened


def _sections(n: int, topic: str) -> str:
    """A text of `n` chunks: a heading always opens a new chunk."""
    return "\n\n".join(
        f"# {topic} part {i}\n\nPart {i} of the {topic} notes: step {i} comes after {i - 1}." for i in range(n)
    )


def _search(client: TestClient, query: str) -> list[str]:
    answer = client.post("/v1/collections/kb/search", json={"query": query, "k": 5})
    assert answer.status_code == 200, answer.text
    return [hit["source_uri"] for hit in answer.json()["hits"]]


def test_wait_false_answers_202_and_the_job_makes_the_documents_searchable(bg: Background) -> None:
    docs = [
        {"text": "Restores replay the write-ahead log after the base backup.", "source_uri": "restore.md"},
        {"text": _sections(3, "backup rotation"), "source_uri": "rotation.md"},
    ]
    accepted = bg.client.post("/v1/collections/kb/documents", params={"wait": "false"}, json=docs)
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["documents"] == 2 and accepted.headers["location"] == body["status_url"] == f"/v1/jobs/{body['job_id']}"
    queued = bg.client.get(body["status_url"]).json()
    assert queued["state"] == "queued" and queued["progress"]["state"] == "queued" and queued["collection"] == "kb"
    assert (queued["progress"]["documents_done"], queued["progress"]["documents_total"]) == (0, 2)
    assert bg.store.collections.get("kb").document_count == 0  # nothing stored inside the request

    assert bg.runner.run_one()
    job = bg.client.get(body["status_url"]).json()
    progress = job["progress"]
    assert job["state"] == "done" and progress["state"] == "done" and progress["error"] is None
    assert (progress["documents_done"], progress["documents_total"]) == (2, 2)
    stored_chunks = sum(d["chunk_count"] for d in bg.client.get("/v1/collections/kb/documents").json())
    assert progress["chunks_total"] == progress["chunks_embedded"] == progress["chunks_stored"] == stored_chunks == 4
    assert progress["outcomes"]["added"] == 2 and progress["eta_s"] == 0
    assert job["result"]["added"] == 2  # the handler's own keys stay
    assert _search(bg.client, "write-ahead log restore")[0] == "restore.md"
    # Any `ragstore worker` may take the job instead of the server's runner.
    vacuum = {"text": "Vacuum runs nightly.", "source_uri": "v"}
    more = bg.client.post("/v1/collections/kb/documents", params={"wait": "false"}, json=vacuum)
    assert run_once(bg.store, threads=1, poll_interval_s=0.1).jobs_run == 1
    assert bg.client.get(more.json()["status_url"]).json()["progress"]["state"] == "done"
    assert "v" in _search(bg.client, "nightly vacuum")
    # wait=true (the default) still stores inside the request.
    direct = bg.client.post("/v1/collections/kb/documents", json={"text": "Snapshots are taken hourly."})
    assert direct.status_code == 201 and direct.json()["documents"][0]["status"] == "added"


def test_an_upload_with_wait_false_is_parsed_first_and_queued_as_loaded(bg: Background) -> None:
    accepted = bg.client.post(
        "/v1/collections/kb/documents",
        params={"wait": "false"},
        files={"file": ("lease.txt", KOREAN.encode("cp949"), "text/plain")},
        data={"encoding": "cp949", "metadata": json.dumps({"team": "housing"})},
    )
    assert accepted.status_code == 202, accepted.text
    assert bg.runner.run_one()
    job = bg.client.get(accepted.json()["status_url"]).json()
    assert job["state"] == "done" and job["progress"]["outcomes"]["added"] == 1, job
    [doc] = bg.client.get("/v1/collections/kb/documents").json()
    # What a synchronous upload records is kept through the queue: the encoding and the raw bytes' hash.
    assert doc["encoding"] == "cp949" and doc["source_hash"] and doc["metadata"]["team"] == "housing"
    assert _search(bg.client, "전세 계약 갱신 확정일자") == ["lease.txt"]
    # The encoding as a query parameter; synchronous this time.
    direct = bg.client.post(
        "/v1/collections/kb/documents",
        params={"encoding": "euc-kr"},
        files={"file": ("again.txt", "# 관리비\n\n관리비는 매달 10일에 낸다.\n".encode("euc-kr"), "text/plain")},
    )
    assert direct.status_code == 201, direct.text


def test_bad_input_is_a_4xx_before_any_job(bg: Background) -> None:
    post = bg.client.post
    url = "/v1/collections/kb/documents"
    answers = {
        "not decodable": post(
            # Bytes no encoding makes sense of (tests/test_encodings.py): "\xff\xfe..." now reads as UTF-16.
            url,
            params={"wait": "false"},
            files={"file": ("a.txt", bytes(range(0x80, 0x100)) * 40 + bytes(range(1, 9)) * 2, "text/plain")},
        ),
        "unknown encoding": post(
            url, params={"wait": "false", "encoding": "no-such-codec"}, files={"file": ("a.txt", b"hi", "text/plain")}
        ),
        "two encodings": post(
            url,
            params={"wait": "false", "encoding": "utf-8"},
            files={"file": ("a.txt", b"hi", "text/plain")},
            data={"encoding": "cp949"},
        ),
        "bad jsonl line": post(
            url,
            params={"wait": "false"},
            files={"file": ("b.jsonl", b'{"text": "fine"}\n{"text": "\\ud800"}\n', "application/x-ndjson")},
        ),
        "empty file": post(url, params={"wait": "false"}, files={"file": ("e.txt", b"   \n", "text/plain")}),
        "unreadable type": post(
            url, params={"wait": "false"}, files={"file": ("x.bin", b"\x00\x01", "application/zip")}
        ),
        "invalid json document": post(url, params={"wait": "false"}, json=[{"text": "ok"}, {"title": 5}]),
        "a json document of no text": post(url, params={"wait": "false"}, json=[{"text": "ok"}, {"text": " \n "}]),
        "encoding with json": post(url, params={"wait": "false", "encoding": "cp949"}, json={"text": "ok"}),
        "wait not a boolean": post(url, params={"wait": "later"}, json={"text": "ok"}),
        "unknown collection": post("/v1/collections/nope/documents", params={"wait": "false"}, json={"text": "ok"}),
    }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert all(400 <= s < 500 for s in statuses.values()), statuses
    assert statuses["unknown collection"] == 404 and statuses["unreadable type"] == 415
    assert "no-such-codec" in answers["unknown encoding"].json()["error"]["message"]
    assert "text" in answers["bad jsonl line"].json()["error"]["message"]
    assert bg.store.jobs.list() == []  # no job was queued for any of them
    assert bg.store.collections.get("kb").document_count == 0


def test_progress_moves_while_the_job_runs_and_is_written_at_most_once_a_second(bg: Background) -> None:
    bg.store.documents.ingestor.embed_slice = 2  # 12 chunks: 6 embedding calls
    accepted = bg.client.post(
        "/v1/collections/kb/documents", params={"wait": "false"}, json={"text": _sections(12, "disk quota")}
    )
    url = accepted.json()["status_url"]
    seen: list[dict[str, Any]] = []
    bg.embedder.during = lambda: seen.append(bg.client.get(url).json())
    bg.embedder.step_s = 2.0  # each slice of 2 chunks takes 2 s: 1 chunk/s
    assert bg.runner.run_one()
    running = [s["progress"] for s in seen]
    assert all(s["state"] == "leased" for s in seen) and all(p["state"] == "running" for p in running)
    assert all(p["chunks_total"] == 12 and (p["documents_done"], p["documents_total"]) == (0, 1) for p in running)
    embedded = [p["chunks_embedded"] for p in running]
    assert embedded == sorted(embedded) and embedded[0] == 0 and embedded[-1] == 10  # the 6th slice is not yet in
    later = [p for p in running if p["chunks_embedded"]]
    assert later and all(p["chunks_per_s"] == pytest.approx(1.0) for p in later)
    assert [p["eta_s"] for p in later] == [pytest.approx(12 - p["chunks_embedded"]) for p in later]
    final = bg.client.get(url).json()["progress"]
    assert (final["chunks_embedded"], final["chunks_stored"], final["documents_done"]) == (12, 12, 1)

    # With the clock standing still, the slices report nothing new: no database write per slice.
    again = bg.client.post(
        "/v1/collections/kb/documents", params={"wait": "false"}, json={"text": _sections(12, "inode limits")}
    )
    url = again.json()["status_url"]
    seen.clear()
    bg.embedder.step_s = 0.0
    assert bg.runner.run_one()
    assert len(seen) == 6 and {s["progress"]["chunks_embedded"] for s in seen} == {0}
    assert bg.client.get(url).json()["progress"]["chunks_stored"] == 12


def test_a_job_run_twice_stores_nothing_twice(bg: Background, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "INGEST_JOB_BATCH", 2)
    docs = [{"text": f"Runbook {i}: rotate the key of service {i}.", "source_uri": f"runbook-{i}.md"} for i in range(5)]
    payload = {"collection": "kb", "documents": docs}
    first = handlers.ingest_documents(bg.store, payload, lambda done, total, detail=None: None)
    again = handlers.ingest_documents(bg.store, payload, lambda done, total, detail=None: None)
    assert first["added"] == 5 and again["unchanged"] == 5 and again["progress"]["chunks_stored"] == 5
    info = bg.store.collections.get("kb")
    assert (info.document_count, info.chunk_count) == (5, 5)
    # An upload queued as the documents the API parsed, likewise.
    [parsed] = bg.store.documents.load_upload("kb", KOREAN.encode("cp949"), "lease.txt", encoding="cp949")
    uploaded = {"collection": "kb", "loaded": [asdict(parsed)]}
    once = handlers.ingest_documents(bg.store, uploaded, lambda done, total, detail=None: None)
    twice = handlers.ingest_documents(bg.store, uploaded, lambda done, total, detail=None: None)
    assert (once["added"], twice["unchanged"], bg.store.collections.get("kb").document_count) == (1, 1, 6)
    bg.store.documents.delete("kb", int(once["document_ids"][0]))

    # A worker that dies half way: the batch it committed stays, the retry finishes the rest, nothing doubles.
    more = [{"text": f"Playbook {i}: drain node {i} first.", "source_uri": f"playbook-{i}.md"} for i in range(5)]
    accepted = bg.client.post("/v1/collections/kb/documents", params={"wait": "false"}, json=more)
    bg.embedder.fail_after = bg.embedder.calls + 1  # the first batch embeds, the second crashes
    assert bg.runner.run_one()
    failed = bg.client.get(accepted.json()["status_url"]).json()
    assert failed["state"] == "queued" and failed["progress"]["state"] == "queued"
    assert "killed" in failed["progress"]["error"] and failed["progress"]["documents_done"] == 2
    assert bg.store.collections.get("kb").document_count == 7
    bg.embedder.fail_after = None
    bg.clock.advance(60)  # past the retry's backoff
    assert bg.runner.run_one()
    done = bg.client.get(accepted.json()["status_url"]).json()
    assert done["state"] == "done" and done["attempts"] == 2, done
    assert done["progress"]["outcomes"]["unchanged"] == 2 and done["progress"]["outcomes"]["added"] == 3
    info = bg.store.collections.get("kb")
    assert (info.document_count, info.chunk_count) == (10, 10)
    report = bg.store.consistency.check("kb")
    assert report is not None and report.problems == 0, report


@pytest.fixture
def secured(make_settings: Callable[..., Settings], embedder: CountingEmbedder) -> Iterator[Background]:
    for opened in _open(make_settings(auth="required"), embedder):
        opened.store.collections.create("kb")
        opened.store.collections.create("other")
        yield opened


def test_jobs_are_listed_to_the_writers_of_their_collection(secured: Background) -> None:
    store, client = secured.store, secured.client

    def key(role: str, *collections: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {store.keys.create(role, role, list(collections) or ['*']).key}"}

    admin, write_kb, write_other = key("admin"), key("write", "kb"), key("write", "other")
    reader, write_all = key("read"), key("write")
    kb_jobs = [
        client.post(
            "/v1/collections/kb/documents", params={"wait": "false"}, json={"text": f"kb {i}"}, headers=write_kb
        )
        for i in range(3)
    ]
    assert {a.status_code for a in kb_jobs} == {202}
    other = client.post(
        "/v1/collections/other/documents", params={"wait": "false"}, json={"text": "o"}, headers=write_other
    )
    checkpoint = store.jobs.enqueue("checkpoint")  # names no collection
    kb_ids = [a.json()["job_id"] for a in kb_jobs]

    def ids(headers: dict[str, str], **params: Any) -> list[int]:
        answer = client.get("/v1/jobs", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return [job["id"] for job in answer.json()]

    assert ids(write_kb) == kb_ids[::-1]  # newest first, never another collection's
    assert ids(write_other) == [other.json()["job_id"]]
    assert ids(admin) == [checkpoint, other.json()["job_id"], *kb_ids[::-1]]
    assert ids(write_all) == ids(admin)
    assert ids(admin, collection="kb") == kb_ids[::-1]
    assert ids(write_kb, limit=2) == kb_ids[:0:-1] and ids(write_kb, limit=2, offset=2) == [kb_ids[0]]
    assert secured.runner.run_one()  # the oldest due job: kb's first
    assert ids(write_kb, state="done") == [kb_ids[0]] and ids(write_kb, state="queued") == kb_ids[:0:-1]
    [listed] = client.get("/v1/jobs", params={"state": "done"}, headers=write_kb).json()
    assert listed["collection"] == "kb" and listed["progress"]["documents_done"] == 1
    # Another collection's jobs: as if it did not exist, whether it does or not.
    hidden = client.get("/v1/jobs", params={"collection": "other"}, headers=write_kb)
    missing = client.get("/v1/jobs", params={"collection": "nowhere"}, headers=write_kb)
    assert hidden.status_code == missing.status_code == 404
    assert client.get("/v1/jobs", headers=reader).status_code == 403
    assert client.get("/v1/jobs").status_code == 401
    for bad in ({"limit": 201}, {"limit": 0}, {"offset": -1}, {"state": "running"}, {"collection": ""}):
        assert client.get("/v1/jobs", params=bad, headers=admin).status_code == 422, bad


def test_the_cli_lists_a_collections_jobs_with_their_progress(bg: Background, monkeypatch: pytest.MonkeyPatch) -> None:
    accepted = bg.client.post(
        "/v1/collections/kb/documents", params={"wait": "false"}, json={"text": _sections(3, "cli")}
    )
    assert bg.runner.run_one()
    bg.store.jobs.enqueue("checkpoint")
    settings = bg.store.settings
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(cli_app, ["jobs", "list", "--collection", "kb", "--json"])
    assert result.exit_code == 0, result.output
    [job] = json.loads(result.output)
    assert job["id"] == accepted.json()["job_id"] and job["collection"] == "kb"
    assert job["progress"]["chunks_stored"] == job["progress"]["chunks_total"] == 3
    table = CliRunner().invoke(cli_app, ["jobs", "list", "--collection", "kb"], env={"COLUMNS": "250"})
    assert table.exit_code == 0 and "1/1" in table.output and "3 embedded, 3 stored / 3" in table.output
    bad = CliRunner().invoke(cli_app, ["jobs", "list", "--state", "running"])
    assert bad.exit_code == 2 and "running" in bad.output


def test_a_job_the_ingest_refuses_is_dead_at_once_not_retried(bg: Background) -> None:
    """Input refused inside the job (here: vectors of the wrong dimension, which only the collection knows)
    fails the same way on every attempt: the job is dead after one, with the reason, and nothing is stored."""
    docs = [{"text": "fine", "chunks": [{"text": "fine", "vector": [0.5, 0.5]}]}]
    accepted = bg.client.post("/v1/collections/kb/documents", params={"wait": "false"}, json=docs)
    assert accepted.status_code == 202, accepted.text
    assert bg.runner.run_one()
    job = bg.client.get(accepted.json()["status_url"]).json()
    assert (job["state"], job["attempts"], job["progress"]["state"]) == ("dead", 1, "failed"), job
    assert "dimension" in job["progress"]["error"] and job["progress"]["eta_s"] is None
    assert bg.store.collections.get("kb").document_count == 0
