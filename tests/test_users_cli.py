"""`ragstore users`: create, list, disable and set-password, on SQLite and PostgreSQL; passwords never on argv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ragstore.cli import app
from ragstore.cli import users as users_cli
from ragstore.config import load_settings
from ragstore.db.security_models import AuditLog
from ragstore.errors import Unauthorized
from ragstore.service import RagStore

runner = CliRunner()
PASSWORD = "correct horse battery staple"


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


def test_users_commands(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run(
        "users", "create", "Ada@Example.org", "--role", "admin", "--password-stdin", "--json", stdin=PASSWORD
    )
    assert code == 0, out
    made = json.loads(out)
    assert made["email"] == "ada@example.org" and made["role"] == "admin" and "password" not in out
    code, out = run("users", "create", "bob@example.org", "--name", "Bob", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0 and "created user bob@example.org" in out

    # Bad input: exit 2 and one line, nothing stored.
    for args, stdin, says in (
        (("users", "create", "eve@example.org"), None, "--password-stdin"),  # no terminal to ask at
        (("users", "create", "eve@example.org", "--password-stdin"), "short", "8 to 1024"),
        (("users", "create", "eve@example.org", "--role", "root", "--password-stdin"), PASSWORD, "role must be"),
        (("users", "create", "ADA@example.org", "--password-stdin"), PASSWORD, "exists already"),
        (("users", "create", "not-an-address", "--password-stdin"), PASSWORD, "not an e-mail"),
        (("users", "disable", "nobody@example.org"), None, "no user"),
        (("users", "set-password", "nobody@example.org", "--password-stdin"), PASSWORD, "no user"),
    ):
        code, out = run(*args, stdin=stdin)
        assert code == 2, (args, out)
        assert says in out and len(out.strip().splitlines()) == 1, out

    code, out = run("users", "list", "--json")
    assert code == 0 and [u["email"] for u in json.loads(out)] == ["ada@example.org", "bob@example.org"]
    code, out = run("users", "list")
    assert code == 0 and "bob@example.org" in out and "Bob" in out

    # At a terminal the password is asked for twice, never echoed.
    monkeypatch.setattr(users_cli, "stdin_is_terminal", lambda: True)
    code, out = run("users", "set-password", str(made["id"]), "--json", stdin="a new password\na new password\n")
    assert code == 0, out
    assert "a new password" not in out
    code, out = run("users", "disable", "bob@example.org", "--json")
    assert code == 0 and json.loads(out)["active"] is False

    with RagStore.open(load_settings(), recover=False) as store:
        assert store.users.login("ada@example.org", "a new password").user.email == "ada@example.org"
        with pytest.raises(Unauthorized):
            store.users.login("bob@example.org", PASSWORD)
        actions = [entry.action for entry in _audit(store)]
    assert actions.count("user.create") == 2 and "user.password" in actions and "user.disable" in actions


def _audit(store: RagStore) -> list[AuditLog]:
    with store.db.read() as session:
        return list(session.scalars(select(AuditLog).order_by(AuditLog.sequence)))
