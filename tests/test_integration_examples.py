"""Every example of docs/integrations.md, run as it is written there (issue 21).

Each `<!-- example: name -->` block is a complete program; it runs in a subprocess in a fresh folder, the HTTP
client's against a real server on a loopback port and the MCP one against a store holding the sample corpus,
with the environment variables the examples read. A doc example that stops working fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ragstore.api.app import create_app
from ragstore.config import Settings
from ragstore.embeddings.local import LocalEmbedder
from ragstore.service import RagStore
from servers import app_in_thread

from conftest import ROOT, SAMPLES

DOC = ROOT / "docs" / "integrations.md"
EXAMPLE = re.compile(r"<!-- example: (?P<name>[a-z]+) -->\n```python\n(?P<code>.*?)```", re.DOTALL)
EXAMPLES = {m["name"]: m["code"] for m in EXAMPLE.finditer(DOC.read_text(encoding="utf-8"))}
# No companion model (the bridge fusion's second embedding) in the examples' own stores: loading it costs
# each program seconds, and what runs here is the integration, not the fusion.
LEAN = {"RAGSTORE_COMPANION_MODEL": "none"}


def test_the_doc_has_an_example_for_each_integration() -> None:
    assert set(EXAMPLES) == {"langchain", "llamaindex", "client", "mcp"}


def run_example(name: str, folder: Path, **env: str) -> str:
    script = folder / f"{name}_example.py"
    script.write_text(EXAMPLES[name], encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAGSTORE_", "DATABASE_URL", "REDIS_URL"))}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=folder,
        env={**base, **LEAN, **env},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"{name} example failed:\n{done.stdout}\n{done.stderr}"
    assert f"{name} example: ok" in done.stdout, done.stdout
    return done.stdout


@pytest.mark.parametrize("name", ["langchain", "llamaindex"])
def test_local_adapter_examples(name: str, tmp_path: Path) -> None:
    run_example(name, tmp_path)
    assert (tmp_path / "ragstore-data").is_dir()  # the data_dir the example named, in its working folder


@contextmanager
def served(data: Path, embedder: LocalEmbedder) -> Iterator[tuple[str, str]]:
    """A keyed server over a fresh store: (its URL, an admin key: the example creates collections)."""
    settings = Settings(data_dir=data, auth="required", companion_model="none")
    with RagStore.open(settings, embedder=embedder) as store:
        key = store.keys.create("examples", "admin").key
        with app_in_thread(create_app(store=store)) as url:
            yield url, key


def test_client_example_against_a_server(tmp_path: Path, local_embedder: LocalEmbedder) -> None:
    with served(tmp_path / "server", local_embedder) as (url, key):
        out = run_example("client", tmp_path, RAGSTORE_URL=url, RAGSTORE_API_KEY=key)
    assert "as the local facade would say:" in out


def test_mcp_example_over_stdio(tmp_path: Path, local_embedder: LocalEmbedder) -> None:
    data = tmp_path / "data"
    with RagStore.open(Settings(data_dir=data, auth="required", companion_model="none"), embedder=local_embedder) as s:
        s.collections.create("samples")
        s.documents.ingest_paths("samples", [SAMPLES / "corpus" / "en"])
        key = s.keys.create("mcp example", "read").key
    out = run_example("mcp", tmp_path, RAGSTORE_DATA_DIR=str(data), RAGSTORE_API_KEY=key)
    assert "sourdough" in out
