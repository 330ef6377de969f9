"""`ragstore mcp` (issue 21): the MCP server, driven by the official SDK's own client over both transports.

Over stdio the real command runs as a subprocess with a read key in RAGSTORE_API_KEY; over streamable HTTP
the server's app runs on a loopback port in this process (over the same SQLite and PostgreSQL stores as
the rest of the suite). Both serve a few documents of the sample corpus. What is proven: the tools are
listed with their schemas, a search finds the expected document, a document reads as a resource, a read
key cannot add while a write key can (and what it added is then found), a key scoped to one collection
cannot reach another, no key or a bad key is refused, and every failure is a readable error, never a
traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from ragstore.api.origin import allowed_hosts
from ragstore.config import Settings
from ragstore.embeddings.local import LocalEmbedder
from ragstore.integrations.mcp import MCP_PATH, http_app
from ragstore.integrations.mcp.resources import document_uri, join_chunks
from ragstore.security.key_format import new_key
from ragstore.service import RagStore
from servers import app_in_thread

from conftest import SAMPLES

CORPUS = [SAMPLES / "corpus" / name for name in ("en/sourdough-bread.md", "en/refund-policy.md", "ko/kimchi-recipe.md")]
SOURDOUGH = "sourdough-bread.md"
TOOLS = {"search", "list_collections", "get_document", "add_text"}
# No companion model (the bridge fusion's second embedding): loading it costs each store seconds, and what
# is tested here is the MCP face, not the fusion.
LEAN: dict[str, Any] = {"companion_model": "none"}


@dataclass(frozen=True)
class Keys:
    read: str
    write: str
    scoped: str  # read on "samples" only


def load_corpus(store: RagStore) -> Keys:
    """Two collections (the sample documents, and one the scoped key may not see) and three keys."""
    store.collections.create("samples")
    report = store.documents.ingest_paths("samples", CORPUS)
    assert report.summary["added"] == len(CORPUS), report.summary
    store.collections.create("private")
    store.documents.add("private", [{"text": "The vault code is kept by the night manager.", "source_uri": "vault"}])
    return Keys(
        read=store.keys.create("mcp read", "read").key,
        write=store.keys.create("mcp write", "write").key,
        scoped=store.keys.create("mcp scoped", "read", ["samples"]).key,
    )


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


# -- stdio: the real command, as a client starts it ----------------------------------------------------------


@pytest.fixture(scope="module")
def stdio_store(tmp_path_factory: pytest.TempPathFactory, local_embedder: LocalEmbedder) -> tuple[Path, Keys]:
    data = tmp_path_factory.mktemp("mcp-stdio") / "data"
    with RagStore.open(Settings(data_dir=data, auth="required", **LEAN), embedder=local_embedder) as store:
        keys = load_corpus(store)
    return data, keys


def mcp_command(data: Path, key: str | None) -> tuple[list[str], dict[str, str]]:
    env = {"RAGSTORE_DATA_DIR": str(data), "RAGSTORE_COMPANION_MODEL": "none", "PATH": os.environ.get("PATH", "")}
    if key is not None:
        env["RAGSTORE_API_KEY"] = key
    return [sys.executable, "-m", "ragstore.cli", "mcp"], env


async def test_stdio_serves_search_documents_and_refuses_a_write_to_a_read_key(stdio_store: tuple[Path, Keys]) -> None:
    data, keys = stdio_store
    command, env = mcp_command(data, keys.read)
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    async with Client(params) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(listed) == TOOLS
        search_schema = listed["search"].input_schema["properties"]
        assert search_schema["k"]["maximum"] == 100 and listed["search"].output_schema is not None

        found = await client.call_tool("search", {"query": "how often do I feed the starter", "collection": "samples"})
        assert not found.is_error, text_of(found)
        hits = found.structured_content["hits"]
        assert hits and hits[0]["source_uri"].endswith(SOURDOUGH), [h["source_uri"] for h in hits]
        assert set(hits[0]) >= {"chunk_id", "document_id", "score", "text", "source_uri", "title", "metadata"}

        resource = await client.read_resource(document_uri("samples", hits[0]["document_id"]))
        text = getattr(resource.contents[0], "text", "")
        assert text.startswith("# Baking Sourdough Bread") and "starter" in text

        refused = await client.call_tool("add_text", {"collection": "samples", "text": "not stored"})
        assert refused.is_error and "add_text needs the write role" in text_of(refused), text_of(refused)

        too_many = await client.call_tool("search", {"query": "bread", "collection": "samples", "k": 101})
        assert too_many.is_error and "less than or equal to 100" in text_of(too_many)
        bad_filter = await client.call_tool(
            "search", {"query": "bread", "collection": "samples", "filter": {"$nope": 1}}
        )
        assert bad_filter.is_error and "$nope" in text_of(bad_filter)
        for failed in (refused, too_many, bad_filter):
            assert "Traceback" not in text_of(failed)
        # Still serving after every refusal.
        assert not (await client.call_tool("list_collections", {})).is_error


def test_stdio_refuses_to_start_without_a_valid_key(stdio_store: tuple[Path, Keys]) -> None:
    """Missing, malformed (both before the store opens) and unknown keys: exit 2 with one readable line on
    stderr, nothing on stdout (the protocol's wire)."""
    data, _ = stdio_store
    runs = {}
    for name, key in (("missing", None), ("malformed", "rsk_not_a_key"), ("unknown", new_key()[0])):
        command, env = mcp_command(data, key)
        runs[name] = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    for name, process in runs.items():
        out, err = process.communicate(timeout=60)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert process.returncode == 2 and out == "", (name, process.returncode, out, err)
        assert len(errors) == 1 and "Traceback" not in err, (name, err)
        wanted = "set RAGSTORE_API_KEY" if name == "missing" else "RAGSTORE_API_KEY: the API key is not valid"
        assert wanted in errors[0], (name, errors)


# -- streamable HTTP: each request's bearer key ------------------------------------------------------------


@pytest.fixture
def http_server(
    make_settings: Callable[..., Settings], local_embedder: LocalEmbedder
) -> Iterator[tuple[str, Keys, RagStore]]:
    with RagStore.open(make_settings(auth="required", **LEAN), embedder=local_embedder) as store:
        keys = load_corpus(store)
        with app_in_thread(http_app(store, "127.0.0.1", 0, hosts=allowed_hosts(store.settings))) as base:
            yield base + MCP_PATH, keys, store


@asynccontextmanager
async def connected(url: str, key: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def test_http_checks_each_request_key_as_the_api_does(http_server: tuple[str, Keys, RagStore]) -> None:
    url, keys, store = http_server
    hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    for headers in ({}, {"Authorization": "Bearer rsk_not_a_key"}, {"Authorization": f"Bearer {keys.read}x"}):
        answer = httpx.post(url, json=hello, headers={"Accept": "application/json, text/event-stream", **headers})
        assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer"), headers

    async with connected(url, keys.read) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
        found = await client.call_tool("search", {"query": "can I get my money back", "collection": "samples"})
        assert found.structured_content["hits"][0]["source_uri"].endswith("refund-policy.md")
        refused = await client.call_tool("add_text", {"collection": "samples", "text": "not stored"})
        assert refused.is_error and "write role" in text_of(refused)
        listed = (await client.list_resources()).resources
        assert len(listed) == len(CORPUS) + 1  # every document of both collections the key may read

    async with connected(url, keys.scoped) as client:
        hidden = await client.call_tool("search", {"query": "vault code", "collection": "private"})
        assert hidden.is_error and "no collection named 'private'" in text_of(hidden)
        names = [c["name"] for c in (await client.call_tool("list_collections", {})).structured_content["collections"]]
        assert names == ["samples"]
        with pytest.raises(MCPError, match="no collection named 'private'"):
            await client.read_resource(document_uri("private", 1))
        assert {r.uri for r in (await client.list_resources()).resources} == {
            document_uri("samples", d.id) for d in store.documents.list("samples")
        }

    async with connected(url, keys.write) as client:
        added = await client.call_tool(
            "add_text",
            {
                "collection": "samples",
                "text": "Zebra crossings: drivers stop for pedestrians waiting at the kerb.",
                "title": "Road rules",
                "metadata": {"topic": "traffic"},
                "source_uri": "mcp:road-rules",
            },
        )
        assert not added.is_error, text_of(added)
        assert added.structured_content["status"] == "added" and added.structured_content["index_state"] == "indexed"
        document_id = added.structured_content["document_id"]
        found = await client.call_tool(
            "search", {"query": "zebra crossing pedestrians", "collection": "samples", "filter": {"topic": "traffic"}}
        )
        assert [h["document_id"] for h in found.structured_content["hits"]] == [document_id]
        document = await client.call_tool(
            "get_document", {"collection": "samples", "document_id": document_id, "chunks": True}
        )
        assert document.structured_content["title"] == "Road rules"
        assert document.structured_content["chunks"][0]["text"].startswith("Zebra crossings")

    store.usage.flush()
    routes = {(row.method, row.route) for row in store.usage.summary().rows}
    assert {("MCP", "mcp:tools/add_text"), ("MCP", "mcp:tools/search")} <= routes, routes


# -- the parts ----------------------------------------------------------------------------------------------


def test_a_document_reads_as_its_chunks_without_their_overlap() -> None:
    from ragstore.text.chunking import chunk_text

    for path in CORPUS:
        text = path.read_text(encoding="utf-8")
        chunks = [c.text for c in chunk_text(text, max_tokens=40, overlap_tokens=16)]
        assert len(chunks) > 2
        assert join_chunks(chunks).split() == text.split(), path.name


def test_importing_ragstore_and_its_cli_does_not_import_the_sdk() -> None:
    script = "import sys, ragstore, ragstore.cli; print(any(m == 'mcp' or m.startswith('mcp.') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_without_the_extra_the_import_and_the_command_name_it() -> None:
    """Without the SDK: the import fails naming `ragstore[mcp]`, and the command says so in one line (exit 2)."""
    script = (
        "import sys\n"
        "sys.modules['mcp'] = None  # as if the extra were not installed\n"
        "try:\n"
        "    import ragstore.integrations.mcp\n"
        "except ImportError as exc:\n"
        "    print(exc, file=sys.stderr)\n"
        "from ragstore.cli import main\n"
        "sys.argv = ['ragstore', 'mcp']\n"
        "main()\n"
    )
    env = {"RAGSTORE_API_KEY": new_key()[0], "PATH": os.environ.get("PATH", "")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    wanted = "pip install 'ragstore[mcp]'"
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and wanted in lines[0] and lines[-1].startswith("error:") and wanted in lines[-1]


async def test_http_calls_are_held_to_the_api_rate_limits(
    make_settings: Callable[..., Settings], local_embedder: LocalEmbedder
) -> None:
    """An MCP session is no way around a key's rate limit: its calls are charged to the key's bucket."""
    settings = make_settings(auth="required", rate_limit_default="3/minute", rate_limit_roles="", **LEAN)
    with RagStore.open(settings, embedder=local_embedder) as store:
        store.collections.create("samples")
        key = store.keys.create("limited", "read").key
        with app_in_thread(http_app(store, "127.0.0.1", 0, hosts=allowed_hosts(store.settings))) as base:
            async with connected(base + MCP_PATH, key) as client:
                answers = [await client.call_tool("list_collections", {}) for _ in range(4)]
    assert [a.is_error for a in answers] == [False, False, False, True]
    assert "over the rate limit of 3/minute" in text_of(answers[3]) and "rate_limited" in text_of(answers[3])
