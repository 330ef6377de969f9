"""`ragstore init --demo` on SQLite and PostgreSQL: a demo user, Korean and English conversations citing real
chunks of the sample corpus, a branch, feedback, and a workflow with executions; a second run adds nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragstore.cli import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None) -> Path:
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(tmp_path / "data"))
    if database_url is not None:
        monkeypatch.setenv("DATABASE_URL", database_url)
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_init_demo_twice(env: Path) -> None:
    from ragstore.runtime.demo import corpus_path

    if corpus_path() is None:
        pytest.skip("no samples/corpus here (an installed package without the repository's samples)")
    code, out = run("init", "--demo", "--json")
    assert code == 0, out
    first = json.loads(out)["demo"]
    assert first["conversations"] == 4 and first["messages"] == 11 and first["ingested"] > 10
    assert first["workflows"] == 1
    code, out = run("init", "--demo", "--json")
    assert code == 0, out
    second = json.loads(out)["demo"]
    assert (second["user_id"], second["conversations"], second["messages"], second["ingested"]) == (
        first["user_id"],
        0,
        0,
        0,
    )
    assert second["workflows"] == 0
    listed = json.loads(run("chat", "list", "--user", "demo@ragstore.invalid", "--json")[1])
    assert len(listed["conversations"]) == 4
    jeonse = next(c for c in listed["conversations"] if c["title"] == "전세 계약 상담")
    context = json.loads(run("chat", "context", jeonse["id"], "--budget", "1000", "--json")[1])
    assert [r["state"] for r in context["references"]] == ["current"], context
    assert len(json.loads(run("chat", "show", jeonse["id"], "--all-branches", "--json")[1])["messages"]) == 3
    workflows = json.loads(run("records", "workflows", "list", "--json")[1])["items"]
    assert len(workflows) == 1
    code, out = run("records", "workflows", "executions", str(workflows[0]["id"]), "--status", "failed", "--json")
    assert code == 0, out
    assert len(json.loads(out)["items"]) == 1
    assert run("init", "--json")[0] == 0  # without --demo, as `make run` does
