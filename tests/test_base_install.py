"""`pip install ragstore` without extras is what `make run` installs: the embedded defaults must work with no
optional package importable (psycopg, redis, pymilvus, chromadb, kiwipiepy, langchain, llama-index, mcp), so
an import of one at module level on a path every store takes fails here rather than in a new user's first
command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ragstore

SRC = str(Path(ragstore.__file__).resolve().parent.parent)
EXTRAS = (
    "psycopg",
    "psycopg_binary",
    "redis",
    "pymilvus",
    "milvus_lite",
    "chromadb",
    "kiwipiepy",
    # issue 21's extras: the integrations are imported only by their own paths
    "langchain_core",
    "llama_index",
    "llama_index.core",
    "mcp",
)
# A None entry in sys.modules makes `import name` raise ImportError, as if the package were not installed.
BOOT = f"import sys; sys.modules.update(dict.fromkeys({EXTRAS!r})); from ragstore.cli import main; main()"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BOOT, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_the_embedded_defaults_need_no_extra(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGSTORE_", "DATABASE_URL", "REDIS_URL"))}
    env.update({"RAGSTORE_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": SRC})
    (tmp_path / "doc.md").write_text("# Backups\n\nA verified backup restores the store and its vectors.\n")
    for args in (
        ("init",),
        ("ingest", str(tmp_path / "doc.md"), "-c", "kb"),
        ("check", "--json"),
        ("backup", "create", "--kind", "full"),
        ("backup", "verify", "--all"),
    ):
        done = _cli(env, *args)
        assert done.returncode == 0, (args, done.stderr)
    found = _cli(env, "search", "verified backup", "-c", "kb", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["hits"], found.stdout
