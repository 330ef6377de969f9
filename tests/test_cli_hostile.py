"""The real `ragstore` command, run as a subprocess, given what a careless or hostile caller gives it.

Every bad input must end in exit 2 and one readable line on stderr naming what is wrong: never a traceback.
One data directory, initialised once, serves the whole module (each run costs a Python start-up).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import ragstore

CLI = [sys.executable, "-m", "ragstore.cli"]
SRC = str(Path(ragstore.__file__).resolve().parent.parent)
COLLECTION = "hostile"


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGSTORE_", "DATABASE_URL", "MILVUS_", "CHROMA_"))}
    env.update({"RAGSTORE_DATA_DIR": str(data_dir), "RAGSTORE_LOG_LEVEL": "WARNING"}, **extra)
    # The ragstore under test, whatever folder a run starts in (a relative PYTHONPATH would not follow).
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def run(env: dict[str, str], *args: str | bytes, cwd: Path | None = None, timeout: float = 300) -> Run:
    done = subprocess.run(
        [*CLI, *args], env=env, cwd=cwd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    return Run(
        done.returncode,
        done.stdout.decode("utf-8", "backslashreplace"),
        done.stderr.decode("utf-8", "backslashreplace"),
    )


def assert_one_line(result: Run, *, code: int = 2, says: str = "") -> None:
    assert result.code == code, result
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert says.lower() in lines[0].lower(), lines[0]


@dataclass(frozen=True)
class Store:
    env: dict[str, str]
    data_dir: Path
    work: Path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    work = tmp_path_factory.mktemp("cli_hostile")
    env = _env(work / "data")
    assert run(env, "init").code == 0
    (work / "doc.txt").write_text("Cats sleep most of the day. Dogs bark at the postman.", encoding="utf-8")
    assert run(env, "ingest", str(work / "doc.txt"), "-c", COLLECTION).code == 0
    yield Store(env=env, data_dir=work / "data", work=work)


def test_a_query_that_is_not_valid_utf8_is_refused_in_one_line(store: Store) -> None:
    # Python turns the undecodable byte into a lone surrogate (surrogateescape) before ragstore sees it.
    result = run(store.env, "search", "-c", COLLECTION, b"caf\xff au lait")
    assert_one_line(result, says="not valid UTF-8")
    assert "\\xff" in result.stderr


def test_document_text_with_a_lone_surrogate_is_refused_without_a_traceback(store: Store) -> None:
    bad = store.work / "bad.jsonl"
    bad.write_text('{"text": "bad \\ud800 text", "title": "odd"}\n', encoding="utf-8")  # JSON may escape one
    result = run(store.env, "ingest", str(bad), "-c", COLLECTION)
    assert result.code == 2, result
    assert "Traceback" not in result.stderr + result.stdout


def test_a_filter_value_with_a_lone_surrogate_is_refused_in_one_line(store: Store) -> None:
    result = run(store.env, "search", "-c", COLLECTION, "--filter", '{"lang": "\\ud800"}', "cats")
    assert_one_line(result)


def test_a_query_longer_than_the_api_allows_is_refused_at_once(store: Store) -> None:
    result = run(store.env, "search", "-c", COLLECTION, "cat " * 2_501, timeout=60)  # 10,004 characters
    assert_one_line(result, says="QUERY: String should have at most 10000 characters")


@pytest.mark.parametrize("shape", ["a file", "below a file"])
def test_a_data_dir_that_cannot_be_a_folder_is_named(store: Store, shape: str) -> None:
    blocker = store.work / "not-a-folder"
    blocker.write_text("x")
    data_dir = blocker if shape == "a file" else blocker / "data"
    for args in (("init",), ("collections", "list"), ("search", "-c", COLLECTION, "cats")):
        assert_one_line(run(_env(data_dir), *args), says="RAGSTORE_DATA_DIR")


def test_deleting_a_collection_that_does_not_exist_asks_nothing(store: Store) -> None:
    # stdin is not a terminal: were it asked first, the answer would be exit 3 "not confirmed".
    assert_one_line(run(store.env, "collections", "delete", "no-such-thing"), says="does not exist")
    assert_one_line(run(store.env, "collections", "delete", "[/bold]markup"), says="[/bold]markup")


def test_stored_text_that_looks_like_markup_prints_as_it_is(store: Store) -> None:
    """rich reads `[...]` as markup: a title `[/b]` failed every listing and search that showed it."""
    odd = store.work / "odd.jsonl"
    odd.write_text('{"text": "Parrots [/b] talk [red]", "title": "[/b] odd [title]"}\n', encoding="utf-8")
    assert run(store.env, "ingest", str(odd), "-c", COLLECTION).code == 0
    for args in (
        ("documents", "list", "-c", COLLECTION),
        ("search", "-c", COLLECTION, "parrots talk"),
        ("search", "-c", COLLECTION, "[/b] parrots"),
        ("analytics", "-c", COLLECTION),
    ):
        result = run(store.env, *args)
        assert result.code == 0 and "Traceback" not in result.stderr, result
        assert "[/b]" in result.stdout, result.stdout
    listed = run(store.env, "documents", "list", "-c", COLLECTION, "--json").stdout
    document_id = next(d["id"] for d in json.loads(listed) if d["title"].startswith("[/b]"))
    shown = run(store.env, "documents", "show", str(document_id), "-c", COLLECTION, "--chunks")
    assert shown.code == 0 and "[/b] odd [title]" in shown.stdout and "Parrots [/b] talk [red]" in shown.stdout


def test_the_store_still_answers_afterwards(store: Store) -> None:
    result = run(store.env, "search", "-c", COLLECTION, "cats", "--json")
    assert result.code == 0 and '"hits"' in result.stdout, result


# -- ragstore's own settings never collide with a library's: pymilvus reads MILVUS_URI itself -------------


def test_the_documented_milvus_uri_works_when_exported(tmp_path: Path) -> None:
    """`MILVUS_URI=./data/milvus.db` made importing pymilvus fail ("Illegal uri") before ragstore ran."""
    env = _env(tmp_path / "data", RAGSTORE_VECTOR_BACKEND="milvus", MILVUS_URI="./data/milvus.db")
    shown = run(env, "config", "show", "--json", cwd=tmp_path)
    assert shown.code == 0 and '"RAGSTORE_MILVUS_URI": "./data/milvus.db"' in shown.stdout, shown.stdout
    assert run(env, "init", cwd=tmp_path).code == 0
    (tmp_path / "doc.txt").write_text("Milvus Lite keeps the vectors of this document.", encoding="utf-8")
    ingested = run(env, "ingest", "doc.txt", "-c", "m", cwd=tmp_path)
    assert ingested.code == 0, ingested
    assert (tmp_path / "data" / "milvus.db").exists()
    found = run(env, "search", "-c", "m", "vectors", "--json", cwd=tmp_path)
    assert found.code == 0 and "Milvus Lite keeps the vectors" in found.stdout, found


def test_a_milvus_uri_in_a_dotenv_file_reaches_neither_pymilvus_nor_the_environment(tmp_path: Path) -> None:
    """pymilvus loads a `.env` into os.environ when imported; ragstore imports it with that turned off and
    MILVUS_URI blank, and puts the environment back as it was."""
    (tmp_path / ".env").write_text("MILVUS_URI=./data/milvus.db\nSOMETHING_ELSE=from-dotenv\n")
    probe = (
        "import os; os.environ['MILVUS_URI'] = './exported/milvus.db'; "
        "import ragstore.vectors.milvus, pymilvus.settings as s; "
        "print(repr(s.Config.MILVUS_URI), os.environ['MILVUS_URI'], os.environ.get('SOMETHING_ELSE'), "
        "os.environ.get('PYTHON_DOTENV_DISABLED'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["''", "./exported/milvus.db", "None", "None"]


def test_odd_valid_strings_round_trip_through_the_cli(store: Store) -> None:
    """Every kind of odd but valid text (test_valid_text.ODD) goes in through `ingest` and comes back the same
    through `documents show`, `documents list` and `search`, both as JSON and as printed text."""
    from test_valid_text import ODD, _odd_document

    source = store.work / "odd.jsonl"
    docs = {kind: _odd_document(kind, value) for kind, value in ODD.items()}
    source.write_text("".join(json.dumps(doc, ensure_ascii=False) + "\n" for doc in docs.values()), encoding="utf-8")
    ingested = run(store.env, "ingest", str(source), "-c", "odd", "--json")
    assert ingested.code == 0, ingested.stderr
    listed = run(store.env, "documents", "list", "-c", "odd", "--json")
    assert listed.code == 0, listed.stderr
    # A file's documents are known by the file and their line (`odd.jsonl#N`), whatever source a line names.
    ids = {doc["source_uri"]: doc["id"] for doc in json.loads(listed.stdout)}
    assert set(ids) == {f"{source}#{line}" for line in range(len(docs))}
    for line, (kind, doc) in enumerate(docs.items()):
        doc_id = ids[f"{source}#{line}"]
        shown = run(store.env, "documents", "show", str(doc_id), "-c", "odd", "--json")
        assert shown.code == 0, shown.stderr
        got = json.loads(shown.stdout)
        assert got["title"] == doc["title"], kind
        assert {k: got["metadata"][k] for k in doc["metadata"]} == doc["metadata"], kind
        found = run(store.env, "search", ODD[kind], "-c", "odd", "--filter", json.dumps({kind: ODD[kind]}), "--json")
        assert found.code == 0, found.stderr
        assert [hit["document_id"] for hit in json.loads(found.stdout)["hits"]] == [doc_id], kind
    for printed in (run(store.env, "documents", "list", "-c", "odd"), run(store.env, "search", "sample", "-c", "odd")):
        assert printed.code == 0 and "Traceback" not in printed.stderr, printed.stderr
