"""The CLI through Typer's runner: exit codes, output, and that every command is documented."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
import typer.main
from typer.testing import CliRunner

from ragstore.cli import app
from ragstore.migrations import MIGRATIONS_DIR

from conftest import ROOT

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None) -> Path:
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(tmp_path / "data"))
    if database_url is not None:
        monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refund.md").write_text("# 환불 규정\n\n구매 후 7일 안에 환불을 요청할 수 있다.\n", encoding="utf-8")
    (docs / "limits.txt").write_text("The business plan allows 600 API requests per minute.\n", encoding="utf-8")
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_init_then_migrate_status(env: Path) -> None:
    code, out = run("init")
    assert code == 0 and "revision" in out
    code, out = run("migrate", "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["current"] == status["head"] and status["up_to_date"]


def test_ingest_search_documents_and_index(env: Path) -> None:
    code, out = run("ingest", "docs", "--collection", "kb")
    assert code == 0 and "2 added" in out
    code, out = run("ingest", "docs", "--collection", "kb", "--json")
    assert code == 0 and json.loads(out)["summary"] == {"added": 0, "unchanged": 2, "replaced": 0, "failed": 0}
    code, out = run("search", "환불 기간", "-c", "kb", "-k", "1", "--json")
    hits = json.loads(out)["hits"]
    assert code == 0 and hits[0]["title"] == "환불 규정" and hits[0]["score"] > 0
    code, out = run("documents", "list", "-c", "kb", "--json")
    docs = json.loads(out)
    assert code == 0 and len(docs) == 2
    refund = next(d for d in docs if d["title"] == "환불 규정")
    code, out = run("documents", "show", str(refund["id"]), "-c", "kb", "--chunks", "--json")
    assert code == 0 and json.loads(out)["chunks"][0]["text"].startswith("# 환불 규정")
    code, out = run("index", "status", "--json")
    assert code == 0 and json.loads(out)["collections"][0]["indexed_chunks"] == 2
    code, out = run("index", "rebuild")
    assert code == 0 and "kb: 2 vectors" in out
    code, out = run("documents", "delete", str(refund["id"]), "-c", "kb")
    assert code == 0
    code, out = run("documents", "list", "-c", "kb", "--json")
    assert len(json.loads(out)) == 1


def test_collections_commands(env: Path) -> None:
    assert run("collections", "create", "kb")[0] == 0
    code, out = run("collections", "create", "kb")
    assert code == 2 and "already exists" in out  # a Conflict: the caller can pick another name
    code, out = run("collections", "list", "--json")
    assert code == 0 and [c["name"] for c in json.loads(out)] == ["kb"]
    assert run("collections", "delete", "kb", "--yes")[0] == 0
    assert json.loads(run("collections", "list", "--json")[1]) == []


def test_unknown_collection_and_bad_input_exit_2(env: Path) -> None:
    code, out = run("search", "x", "-c", "nope")
    assert code == 2 and "collection 'nope' does not exist" in out
    (env / "docs" / "empty.txt").write_text("")
    code, out = run("ingest", "docs", "-c", "kb")
    assert code == 2 and "empty.txt: is empty" in out
    code, out = run("search", "x", "-c", "kb", "--filter", "{broken")
    assert code == 2 and "--filter is not valid JSON" in out


def test_config_show_masks_secrets_and_check_names_bad_values(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret123")
    code, out = run("config", "show", "--json")
    assert code == 0 and "sk-secret123" not in out and json.loads(out)["OPENAI_API_KEY"] == "**********"
    code, out = run("config", "check")
    assert code == 0 and "configuration ok" in out
    monkeypatch.setenv("RAGSTORE_CHUNK_SIZE_TOKENS", "abc")
    code, out = run("config", "check")
    assert code == 2 and "RAGSTORE_CHUNK_SIZE_TOKENS" in out


def test_migrate_downgrade_and_upgrade(env: Path) -> None:
    run("init")
    code, out = run("migrate", "downgrade", "0001", "--yes")
    assert code == 0 and "0001" in out
    code, out = run("migrate", "downgrade", "base", "--yes")
    assert code == 0 and "base" in out
    code, out = run("migrate", "upgrade")
    head = sorted(p.name for p in MIGRATIONS_DIR.joinpath("versions").glob("0*.py"))[-1][:4]
    assert code == 0 and f"revision {head}" in out


def walk(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found.extend(walk(sub, (*path, name)))
    return found


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing_help, missing_docs = [], []
    for path, command in walk(typer.main.get_command(app)):
        if not path:
            continue
        if not (command.help or "").strip():
            missing_help.append(" ".join(path))
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        if f"ragstore {' '.join(path)}" not in readme and not (
            len(path) == 2 and f"ragstore {path[0]}" in readme and path[1] in readme
        ):
            missing_docs.append(" ".join(path))
    assert not missing_help, f"commands without help: {missing_help}"
    assert not missing_docs, f"commands not in README.md: {missing_docs}"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_serve_refuses_several_processes_in_the_embedded_profile(env: Path) -> None:
    code, out = run("serve", "--workers", "2")
    assert code == 2 and "RAGSTORE_VECTOR_BACKEND=embedded" in out and "one server process" in out
