"""`ragstore ingest` (--root, --sync, --dry-run, --keep-duplicates, --json, progress), `collections create
--exist-ok` and `POST /v1/collections` with `exist_ok` (issue 17)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import CliRunner

from ragstore import RagStore
from ragstore.api.app import create_app
from ragstore.cli import app
from ragstore.cli.ingest_progress import IngestView, describe
from ragstore.clock import ManualClock
from ragstore.documents.progress import IngestProgress

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None) -> Path:
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(tmp_path / "data"))
    if database_url is not None:
        monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "refund.md").write_text("# 환불 규정\n\n구매 후 7일 안에 환불을 요청할 수 있다.\n", encoding="utf-8")
    (docs / "sub" / "limits.txt").write_text("The business plan allows 600 requests a minute.\n", encoding="utf-8")
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_ingest_json_root_sync_and_dry_run(env: Path) -> None:
    code, out = run("ingest", "docs", "-c", "kb", "--root", "docs", "--json")
    report = json.loads(out)
    assert code == 0 and set(report) == {"collection", "summary", "documents", "dry_run"}
    assert sorted(d["source_uri"] for d in report["documents"]) == ["refund.md", "sub/limits.txt"]
    (env / "docs" / "sub" / "limits.txt").unlink()
    (env / "docs" / "copy.md").write_text((env / "docs" / "refund.md").read_text(encoding="utf-8"), encoding="utf-8")
    code, out = run("ingest", "docs", "-c", "kb", "--root", "docs", "--sync", "--dry-run", "--json")
    dry = json.loads(out)
    assert code == 0 and dry["dry_run"] is True
    assert {d["source_uri"]: d["status"] for d in dry["documents"]} == {
        "copy.md": "duplicate",
        "refund.md": "unchanged",
        "sub/limits.txt": "deleted",
    }
    assert next(d for d in dry["documents"] if d["status"] == "duplicate")["duplicate_of"] == "refund.md"
    code, out = run("documents", "list", "-c", "kb", "--json")
    assert len(json.loads(out)) == 2  # the dry run changed nothing
    code, out = run("ingest", "docs", "-c", "kb", "--root", "docs", "--sync", "--keep-duplicates")
    assert code == 0 and "1 added" in out and "1 deleted" in out and "1 unchanged" in out
    code, out = run("documents", "list", "-c", "kb", "--json")
    assert sorted(d["source_uri"] for d in json.loads(out)) == ["copy.md", "refund.md"]


def test_bad_input_is_exit_2_with_one_line(env: Path) -> None:
    (env / "outside.txt").write_text("Outside the root.\n", encoding="utf-8")
    for args, words in (
        (("docs", "--root", "nowhere"), "no such folder"),
        (("outside.txt", "--root", "docs"), "outside the root"),
        (("docs/*.pdf", "--sync"), "no file matches"),
    ):
        code, out = run("ingest", *args, "-c", "kb")
        assert code == 2 and words in out and len(out.strip().splitlines()) == 1, out
    code, out = run("collections", "list", "--json")
    assert json.loads(out) == []


def test_an_ingest_whose_every_file_fails_creates_no_collection(env: Path) -> None:
    (env / "bad").mkdir()
    (env / "bad" / "broken.json").write_text("{not json", encoding="utf-8")
    code, out = run("ingest", "bad", "-c", "kb", "--json")
    assert code == 2 and json.loads(out)["summary"]["failed"] == 1
    code, out = run("collections", "list", "--json")
    assert json.loads(out) == []
    code, out = run("ingest", "bad", "docs", "-c", "kb")
    assert code == 2 and "created collection kb" in out and "2 added" in out


def test_collections_create_exist_ok(env: Path) -> None:
    assert run("collections", "create", "kb")[0] == 0
    code, out = run("collections", "create", "kb")
    assert code == 2 and "already exists" in out
    code, out = run("collections", "create", "kb", "--exist-ok", "--json")
    assert code == 0 and json.loads(out)["name"] == "kb"
    code, out = run("collections", "create", "kb", "--exist-ok", "--description", "other")
    assert code == 2 and "description" in out


@pytest.fixture
def client(store: RagStore) -> Iterator[TestClient]:
    with TestClient(create_app(store=store)) as test_client:
        yield test_client


def test_http_create_exist_ok(client: TestClient) -> None:
    assert client.post("/v1/collections", json={"name": "kb", "exist_ok": True}).status_code == 201
    again = client.post("/v1/collections", json={"name": "kb", "exist_ok": True})
    assert again.status_code == 200 and again.json()["name"] == "kb"
    other = client.post("/v1/collections", json={"name": "kb", "metric": "dot", "exist_ok": True})
    assert other.status_code == 409 and "metric" in other.json()["error"]["message"]
    assert client.post("/v1/collections", json={"name": "kb"}).status_code == 409
    responses = client.get("/openapi.json").json()["paths"]["/v1/collections"]["post"]["responses"]
    assert {"200", "201", "409", "422"} <= set(responses)


def _progress(files: int, embedded: int, stored: int, known: int, done_bytes: int) -> IngestProgress:
    return IngestProgress(
        files_done=files,
        files_total=4,
        chunks_embedded=embedded,
        chunks_stored=stored,
        chunks_known=known,
        bytes_done=done_bytes,
        bytes_total=400,
        current="docs/a.md",
    )


def test_plain_view_prints_a_line_every_interval_with_rate_and_time_left() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    console = Console(record=True, width=200, force_terminal=False)
    view = IngestView(console, terminal=False, interval_s=5.0, clock=clock)
    clock.advance(2)
    view(_progress(1, 10, 0, 20, 100))
    assert console.export_text() == ""  # not yet: one line every 5 s
    clock.advance(8)
    view(_progress(1, 20, 20, 20, 100))  # 20 chunks in 10 s; 80 expected (20 x 400/100): 60 left, 30 s
    clock.advance(1)
    view(_progress(2, 25, 20, 40, 200))  # within 5 s of the last line: nothing
    view.close()
    lines = console.export_text().splitlines()
    assert lines[0] == ("files 1/4, chunks embedded 20/80, stored 20, 2.0 chunks/s, 10s elapsed, ~30s left")
    assert lines[1].startswith("files 2/4, chunks embedded 25/80, stored 20") and len(lines) == 2


def test_describe_done_and_unknown() -> None:
    p = _progress(0, 0, 0, 0, 0)
    assert describe(p, 0.0).endswith("time left unknown")
    done = IngestProgress(
        files_done=4,
        files_total=4,
        chunks_embedded=90,
        chunks_stored=90,
        chunks_known=90,
        bytes_done=400,
        bytes_total=400,
    )
    assert describe(done, 3725).endswith("1h02m elapsed, done")


def test_terminal_view_draws_a_bar_on_the_console() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    console = Console(record=True, width=200, force_terminal=True)
    view = IngestView(console, terminal=True, clock=clock)
    clock.advance(10)
    view(_progress(1, 20, 20, 20, 100))
    view.close()
    text = console.export_text()
    assert "1/4" in text and "chunks embedded 20/80" in text and "2.0 chunks/s" in text and "~30s left" in text


def test_encoding_passes_through_to_the_loaders(env: Path) -> None:
    legacy = env / "legacy"
    legacy.mkdir()
    (legacy / "notice.txt").write_bytes("공지: 환불은 구매 후 7일 안에 요청할 수 있다.\n".encode("cp949"))
    code, out = run("ingest", "legacy", "-c", "kb", "--encoding", "cp949", "--json")
    report = json.loads(out)
    assert code == 0 and report["summary"]["added"] == 1, out
    code, out = run("documents", "list", "-c", "kb", "--json")
    assert json.loads(out)[0]["encoding"] == "cp949"
