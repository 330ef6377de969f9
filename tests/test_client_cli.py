"""`ragstore --url URL --api-key-file F COMMAND`: the commands the client serves print what they print
locally (the same tables, the same --json), the others exit 2 with one line, and the key is never shown.

The local store and the served one hold the same documents, loaded the same way, so every output compares
equal once times and durations are masked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from client_helpers import Served, normal, second_settings, served_store
from ragstore.cli import app
from ragstore.client import RagStoreClient
from ragstore.config import Settings
from ragstore.service import RagStore

runner = CliRunner()
DOCS = [
    {"text": "The Seoul subway fare is 1,400 won for an adult with a card.", "title": "fares", "source_uri": "fares"},
    {"text": "김치는 배추를 소금에 절여 발효시킨 음식이다.", "title": "김치", "source_uri": "kimchi",
     "metadata": {"lang": "ko"}},
    {"text": "Buses and the subway share one transit card.", "title": "transfers", "source_uri": "transfers"},
]  # fmt: skip
TIMES = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?|\d+(\.\d+)? ms")


@pytest.fixture
def database_url() -> None:
    """SQLite only: remote mode is the CLI and the client, the same on either database (test_client.py runs
    the client on both)."""
    return None


@pytest.fixture
def both(
    store: RagStore,
    settings: Settings,
    make_settings: Callable[..., Settings],
    request: pytest.FixtureRequest,
    database_url: str | None,
    tmp_path: Path,
    embedder: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Served, Path]]:
    """The same collection in the local store (closed again, for the CLI to open) and behind a server; the
    server's key in a file."""
    store.collections.create("kb")
    store.documents.add("kb", DOCS)
    store.close()
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(settings.data_dir))
    if database_url is not None:
        monkeypatch.setenv("DATABASE_URL", database_url)
    with served_store(second_settings(make_settings, request, database_url, tmp_path / "remote"), embedder) as s:
        with RagStoreClient(s.url, s.key) as client:
            client.collections.create("kb")
            client.documents.add("kb", DOCS)
        key_file = tmp_path / "key"
        key_file.write_text(f"  {s.key}\n", encoding="utf-8")
        yield s, key_file


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_remote_commands_print_what_the_local_ones_print(both: tuple[Served, Path]) -> None:
    served, key_file = both
    remote = ("--url", served.url, "--api-key-file", str(key_file))
    for command in (
        ["collections", "list"],
        ["collections", "show", "kb"],
        ["documents", "list", "-c", "kb"],
        ["documents", "show", "2", "-c", "kb", "--chunks"],
        ["search", "subway fare", "-c", "kb", "-k", "2"],
        ["search", "김치", "-c", "kb", "--mode", "lexical", "--explain"],
        ["check", "run"],
        ["documents", "show", "99", "-c", "kb"],
        ["collections", "show", "nowhere"],
    ):
        local = run(*command)
        there = run(*remote, *command)
        assert there[0] == local[0], (command, there)
        assert _masked(there[1]) == _masked(local[1]), command
        assert there[2] == local[2], command  # the same error line, or none
        local_json, there_json = _json_run(*command), _json_run(*remote, *command)
        # The server records its check runs as triggered by the API; a search asked twice of one server is
        # answered from its cache, while each local run starts cold.
        assert _without(there_json, "trigger", "cached") == _without(local_json, "trigger", "cached"), command
    code, _, _ = run(*remote, "documents", "delete", "3", "-c", "kb", "--json")
    assert code == 0 and [d.id for d in served.store.documents.list("kb")] == [1, 2]


def _masked(text: str) -> str:
    """Times and durations masked; a centred title (its duration's digits) moves by a space or two."""
    return "\n".join(line.strip(" ") for line in TIMES.sub("<t>", text).splitlines())


def _json_run(*args: str) -> Any:
    """What `args --json` gives: the exit code and the JSON printed, or the error line."""
    code, out, err = run(*args, "--json")
    return normal([code, json.loads(out) if code == 0 else err])


def _without(value: Any, *keys: str) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, *keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, *keys) for v in value]
    return value


def test_chat_and_backups_run_against_the_server(both: tuple[Served, Path]) -> None:
    served, key_file = both
    remote = ("--url", served.url, "--api-key-file", str(key_file))
    code, made, _ = run(*remote, "chat", "new", "--title", "trip", "-c", "kb")
    conversation = made.strip()
    assert code == 0 and served.store.chat.get(conversation).title == "trip"
    assert run(*remote, "chat", "add", conversation, "subway fare?", "--role", "user")[0] == 0
    code, shown, _ = run(*remote, "chat", "show", conversation, "--json")
    assert code == 0 and json.loads(shown)["messages"][0]["content"] == "subway fare?"
    code, found, _ = run(*remote, "chat", "search", "subway", "--json")
    assert code == 0 and [h["conversation_id"] for h in json.loads(found)["hits"]] == [conversation]
    code, made, _ = run(*remote, "backup", "create", "--kind", "snapshot", "--json")
    backup = json.loads(made)
    assert code == 0 and [b.id for b in served.store.backups.list()] == [backup["id"]]
    code, listed, _ = run(*remote, "backup", "list", "--json")
    assert code == 0 and [b["id"] for b in json.loads(listed)] == [backup["id"]]
    code, verified, _ = run(*remote, "backup", "verify", "--json")
    assert code == 0 and json.loads(verified)[0]["ok"] is True
    code, status, _ = run(*remote, "backup", "status", "--json")
    assert code == 0 and json.loads(status)["latest"]["id"] == backup["id"]


def test_commands_that_need_the_local_store_exit_2_in_remote_mode(
    both: tuple[Served, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, key_file = both
    for command in (["analytics", "-c", "kb"], ["backup", "prune"], ["index", "rebuild"], ["ingest", ".", "-c", "kb"]):
        code, out, err = run("--url", served.url, "--api-key-file", str(key_file), *command)
        assert code == 2 and out == "", command
        assert err.count("\n") == 1 and "needs a local store" in err and f"ragstore {command[0]}" in err, err
    monkeypatch.setenv("RAGSTORE_URL", served.url)
    monkeypatch.setenv("RAGSTORE_API_KEY", served.key)
    code, out, _ = run("collections", "list", "--json")  # the environment alone selects remote mode
    assert code == 0 and [c["name"] for c in json.loads(out)] == ["kb"]
    code, _, err = run("db", "stats")
    assert code == 2 and "needs a local store" in err


def test_the_key_file_is_checked_and_the_key_never_shown(both: tuple[Served, Path], tmp_path: Path) -> None:
    served, _ = both
    empty, wrong = tmp_path / "empty", tmp_path / "wrong"
    empty.write_text("\n  \n", encoding="utf-8")
    wrong.write_text("rs_wrong-secret-value\n", encoding="utf-8")
    cases = {
        "empty": ["--url", served.url, "--api-key-file", str(empty)],
        "missing": ["--url", served.url, "--api-key-file", str(tmp_path / "absent")],
        "no url": ["--api-key-file", str(wrong)],
        "bad url": ["--url", "localhost:8000"],
        "wrong key": ["--url", served.url, "--api-key-file", str(wrong)],
    }
    for case, options in cases.items():
        code, out, err = run(*options, "collections", "list")
        assert code == 2 and out == "" and err.count("\n") == 1, (case, err)
        assert "wrong-secret" not in err and served.key not in err, case
    unreachable = run("--url", "http://127.0.0.1:9", "collections", "list")
    assert unreachable[0] == 1 and "http://127.0.0.1:9" in unreachable[2]
