"""`ragstore chat`: new, add, show, list, context, feedback, update, branch, delete, on SQLite and PostgreSQL.

The CLI acts as the local operator (who sees every conversation); bad input is exit 2 with one line."""

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
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def ok(*args: str) -> dict:  # type: ignore[type-arg]
    code, out = run(*args, "--json")
    assert code == 0, (args, out)
    return json.loads(out)  # type: ignore[no-any-return]


def test_chat_commands(env: Path) -> None:
    cid = ok("chat", "new", "--title", "첫 대화", "--end-user", "anon-7")["id"]
    first = ok("chat", "add", cid, "--role", "user", "김치는 어떻게 담가요?")
    second = ok("chat", "add", cid, "--role", "assistant", "배추를 절여요.", "--references", "[]")
    regen = ok("chat", "add", cid, "--role", "assistant", "Salt the cabbage.", "--parent", str(first["id"]))
    shown = ok("chat", "show", cid)
    assert [m["id"] for m in shown["messages"]] == [first["id"], regen["id"]]
    assert len(ok("chat", "show", cid, "--all-branches")["messages"]) == 3
    code, out = run("chat", "show", cid)
    assert code == 0 and "첫 대화" in out and "Salt the cabbage." in out
    switched = ok("chat", "branch", cid, str(second["id"]))
    assert switched["active_message_id"] == second["id"]
    context = ok("chat", "context", cid, "--budget", "1000")
    assert [m["content"] for m in context["messages"]] == ["김치는 어떻게 담가요?", "배추를 절여요."]
    assert context["tokens"] <= 1000 and context["references"] == []
    assert [c["id"] for c in ok("chat", "list")["conversations"]] == [cid]
    rated = ok("chat", "feedback", str(second["id"]), "--rating", "4", "--scale", "stars", "--comment", "good")
    assert rated["rating"] == 4 and rated["scale"] == "stars"
    version = switched["version"]
    assert ok("chat", "update", cid, "--version", str(version), "--title", "renamed")["title"] == "renamed"

    for args, says in (
        (("chat", "update", cid, "--version", str(version), "--title", "stale"), "changed since"),
        (("chat", "add", cid, "--role", "robot", "x"), "--role"),
        (("chat", "add", cid, "--role", "user", "x", "--references", "{not json"), "not JSON"),
        (("chat", "add", cid, "--role", "user", "x", "--references", '[{"chunk_id": 0}]'), "references"),
        (("chat", "feedback", str(second["id"]), "--rating", "3"), "thumbs"),
        (("chat", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV"), "no conversation"),
        (("chat", "show", "nonsense"), "no conversation"),
        (("chat", "new", "-c", "missing"), "no collection"),
        (("chat", "new", "--user", "nobody@example.org"), "no user"),
    ):
        code, out = run(*args)
        assert code == 2, (args, out)
        assert says in out and len(out.strip().splitlines()) == 1, (args, out)

    code, out = run("chat", "delete", cid)  # no terminal to ask at: refused, nothing deleted
    assert code == 3 and ok("chat", "show", cid)["conversation"]["id"] == cid
    code, out = run("chat", "delete", cid, "--yes")
    assert code == 0, out
    code, out = run("chat", "show", cid)
    assert code == 2 and "no conversation" in out
    assert ok("chat", "list")["conversations"] == []
