"""`ragstore secrets`: keygen, set (stdin only), list, rotate and delete through Typer's runner, on SQLite and
PostgreSQL; bad input is exit 2 with one line and changes nothing; no command prints a value."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragstore.cli import app
from ragstore.security.local_secrets import decode_secret
from ragstore.security.vault import MAX_VALUE_BYTES, key_id_of

runner = CliRunner()
OLD_KEY = base64.b64encode(bytes(range(32))).decode()
NEW_KEY = base64.b64encode(bytes(range(64, 96))).decode()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None) -> Path:
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ENCRYPTION_KEY", OLD_KEY)
    if database_url is not None:
        monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    assert run("init")[0] == 0
    return tmp_path


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_keygen_prints_a_new_32_byte_key_each_time(env: Path) -> None:
    code, first = run("secrets", "keygen")
    assert code == 0 and len(decode_secret(first.strip(), "ENCRYPTION_KEY")) == 32
    code, second = run("secrets", "keygen", "--json")
    assert code == 0 and json.loads(second)["key"] != first.strip()


def test_set_list_rotate_and_delete(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run("secrets", "set", "collection:docs", "openai_api_key", stdin="sk-from-stdin-7a6b5c\n")
    assert code == 0 and "stored collection:docs/openai_api_key" in out and "sk-from-stdin" not in out
    code, out = run("secrets", "set", "mcp:3", "token", "--json", stdin="mcp-token-0f0e")
    assert code == 0 and json.loads(out)["key_id"] == key_id_of(bytes(range(32)))
    code, out = run("secrets", "list", "--json")
    listed = json.loads(out)
    assert code == 0 and [(r["scope"], r["name"]) for r in listed] == [
        ("collection:docs", "openai_api_key"),
        ("mcp:3", "token"),
    ]
    assert "sk-from-stdin" not in out and "mcp-token" not in out
    code, out = run("secrets", "list", "--scope", "mcp:3")
    assert code == 0 and "token" in out and "openai_api_key" not in out

    monkeypatch.setenv("ENCRYPTION_KEY", NEW_KEY)
    monkeypatch.setenv("ENCRYPTION_KEY_PREVIOUS", OLD_KEY)
    code, out = run("secrets", "rotate", "--json")
    report = json.loads(out)
    assert code == 0 and report["rotated"] == 2 and report["unreadable"] == []
    code, out = run("secrets", "rotate")
    assert code == 0 and "re-encrypted 0 secret(s)" in out and "ENCRYPTION_KEY_PREVIOUS can be removed" in out

    monkeypatch.delenv("ENCRYPTION_KEY_PREVIOUS")
    code, out = run("secrets", "list", "--json")
    assert {r["key_id"] for r in json.loads(out)} == {key_id_of(bytes(range(64, 96)))}
    code, out = run("secrets", "delete", "mcp:3", "token")
    assert code == 3  # not confirmed: stdin is not a terminal
    code, out = run("secrets", "delete", "mcp:3", "token", "--yes")
    assert code == 0 and "deleted mcp:3/token" in out
    code, out = run("secrets", "delete", "mcp:3", "token", "--yes")
    assert code == 2 and "no secret 'token' in scope 'mcp:3'" in out


def test_rotate_exits_1_naming_what_neither_key_opens(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("secrets", "set", "mcp:1", "token", stdin="under-the-old-key")[0] == 0
    monkeypatch.setenv("ENCRYPTION_KEY", NEW_KEY)  # and no ENCRYPTION_KEY_PREVIOUS: the old key is lost
    code, out = run("secrets", "rotate")
    assert code == 1 and "mcp:1/token" in out


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("args", "stdin", "problem"),
    [
        (("secrets", "set", "mcp:1", "token"), "", "must not be empty"),
        (("secrets", "set", "mcp:1", "token"), "x" * (MAX_VALUE_BYTES + 1), f"at most {MAX_VALUE_BYTES} bytes"),
        (("secrets", "set", "s" * 200, "token"), "value", "at most 128 characters"),
        (("secrets", "set", "mcp:1", "bad\tname"), "value", "control characters"),
        (("secrets", "list", "--scope", ""), None, "scope must not be empty"),
        (("secrets", "rotate", "--batch-size", "0"), None, "--batch-size"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(env: Path, args: tuple[str, ...], stdin: str | None, problem: str) -> None:
    assert run("secrets", "set", "kept", "name", stdin="kept-value")[0] == 0
    code, out = run(*args, stdin=stdin)
    assert code == 2 and problem in out, out
    code, out = run("secrets", "list", "--json")
    assert [(r["scope"], r["name"]) for r in json.loads(out)] == [("kept", "name")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_wrong_encryption_key_is_a_line_naming_the_variable(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCRYPTION_KEY", "too-short-to-be-a-key")
    code, out = run("secrets", "set", "mcp:1", "token", stdin="value")
    assert code == 2 and "ENCRYPTION_KEY must be 32 bytes" in out and len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_config_show_masks_generated_and_configured_server_keys(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local profile generates what is not configured; `config show` names the file, never the value."""
    monkeypatch.delenv("ENCRYPTION_KEY")
    monkeypatch.setenv("JWT_SECRET", NEW_KEY)
    monkeypatch.setenv("ENCRYPTION_KEY_PREVIOUS", OLD_KEY)
    assert run("secrets", "set", "mcp:1", "token", stdin="value-under-a-generated-key")[0] == 0
    generated = (env / "data" / "secrets" / "encryption_key").read_text().strip()
    key = decode_secret(generated, "ENCRYPTION_KEY")
    code, out = run("config", "show", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["ENCRYPTION_KEY"].startswith("********** (generated in ")
    assert shown["JWT_SECRET"] == shown["ENCRYPTION_KEY_PREVIOUS"] == "**********"
    code, text = run("config", "show")
    for spelling in (generated, key.hex(), base64.b64encode(key).decode(), NEW_KEY, OLD_KEY):
        assert spelling not in out and spelling not in text
