"""`ragstore records ...`: the generated commands, on SQLite and PostgreSQL: CRUD with --json, bad input
exits 2 with one line, credentials never printed, the type-specific commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragstore.cli import app
from ragstore.config import Settings

runner = CliRunner()
SECRET = "cli-mcp-secret-9a8b7c"


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("RAGSTORE_DATABASE_URL", settings.database_url)
    assert runner.invoke(app, ["init"]).exit_code == 0
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_crud_with_json(env: Path) -> None:
    code, out, _ = run("records", "workflows", "create", "--data", '{"name": "요약", "definition": {"a": 1}}', "--json")
    assert code == 0, out
    made = json.loads(out)
    assert made["version"] == 1
    body = env / "change.json"
    body.write_text(json.dumps({"version": 1, "active": False}))
    code, out, _ = run("records", "workflows", "update", str(made["id"]), "--file", str(body), "--json")
    assert code == 0 and json.loads(out)["active"] is False
    code, _, err = run("records", "workflows", "update", str(made["id"]), "--file", str(body))
    assert code == 2 and "version" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run("records", "workflows", "list", "--filter", '{"active": false}', "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)["items"]] == [made["id"]]
    code, out, _ = run("records", "workflows", "get", str(made["id"]))
    assert code == 0 and "요약" in out
    assert run("records", "workflows", "delete", str(made["id"]))[0] == 3  # not confirmed
    code, out, _ = run("records", "workflows", "delete", str(made["id"]), "--yes", "--json")
    assert code == 0 and json.loads(out)["deleted"] is True
    assert run("records", "workflows", "get", str(made["id"]))[0] == 2


@pytest.mark.parametrize(
    "args",
    [
        ("records", "workflows", "create", "--data", "{not json"),
        ("records", "workflows", "create", "--data", "[1]"),
        ("records", "workflows", "create"),
        ("records", "workflows", "create", "--data", '{"name": ""}'),
        ("records", "workflows", "create", "--data", '{"name": "x", "bogus": 1}'),
        ("records", "workflows", "list", "--filter", '{"bogus": 1}'),
        ("records", "workflows", "list", "--sort", "bogus"),
        ("records", "workflow-executions", "create", "--data", '{"workflow_id": 77}'),
        ("records", "workflows", "create", "--file", "/no/such/file.json"),
    ],
)
def test_bad_input_exits_2_with_one_line(env: Path, args: tuple[str, ...]) -> None:
    code, _, err = run(*args)
    assert code == 2, err
    assert len(err.strip().splitlines()) <= 2 and err.strip()


def test_credentials_are_never_printed(env: Path) -> None:
    body = {"name": "m", "transport": "stdio", "endpoint": "mcp-server --x", "credentials": SECRET}
    code, out, _ = run("records", "mcp-connections", "create", "--data", json.dumps(body), "--json")
    assert code == 0 and json.loads(out)["has_credentials"] is True and SECRET not in out
    for args in (("list", "--json"), ("get", "1", "--json"), ("list",), ("get", "1")):
        code, out, _ = run("records", "mcp-connections", *args)
        assert code == 0 and SECRET not in out


def test_type_specific_commands(env: Path) -> None:
    run("records", "flows", "create", "--data", '{"name": "f", "definition": {"n": 1}}')
    run("records", "flows", "update", "1", "--data", '{"version": 1, "definition": {"n": 2}}')
    code, out, _ = run("records", "flows", "version", "1", "1", "--json")
    assert code == 0 and json.loads(out)["definition"] == {"n": 1}
    run("records", "workflows", "create", "--data", '{"name": "w"}')
    run("records", "workflow-executions", "create", "--data", '{"workflow_id": 1, "status": "failed"}')
    code, out, _ = run("records", "workflows", "executions", "1", "--status", "failed", "--json")
    assert code == 0 and len(json.loads(out)["items"]) == 1
    run("records", "ai-request-stats", "create", "--data", '{"model": "m1", "kind": "llm", "prompt_tokens": 5}')
    code, out, _ = run("records", "ai-request-stats", "summary", "--days", "7", "--json")
    assert code == 0 and json.loads(out)["rows"][0]["prompt_tokens"] == 5
    assert run("records", "ai-request-stats", "summary", "--days", "0")[0] == 2
    code, out, _ = run("records", "cache-metadata", "sample", "--json")
    assert code == 0 and len(json.loads(out)) == 3
