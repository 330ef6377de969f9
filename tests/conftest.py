"""Shared fixtures: real SQLite files in temporary directories, the real local model loaded once."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from ragstore.config import Settings
from ragstore.embeddings.base import EmbedKind
from ragstore.embeddings.local import LocalEmbedder
from ragstore.service import RagStore

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build their own Settings; variables of the machine running them must not leak in."""
    for key in list(os.environ):
        if key.startswith(("RAGSTORE_", "OPENAI_", "SQLITE_")) and not key.startswith(
            ("RAGSTORE_TEST_", "RAGSTORE_REQUIRE_")
        ):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)


class CountingEmbedder:
    """The real local model, counting how many texts it was asked to embed."""

    def __init__(self, inner: LocalEmbedder) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.model = inner.model
        self.dimension = inner.dimension
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str], *, kind: EmbedKind) -> NDArray[np.float32]:
        self.calls.append(len(texts))
        return self.inner.embed(texts, kind=kind)

    @property
    def texts_embedded(self) -> int:
        return sum(self.calls)


@pytest.fixture(scope="session")
def local_embedder() -> LocalEmbedder:
    embedder = LocalEmbedder()
    embedder.warm_up()
    return embedder


@pytest.fixture
def embedder(local_embedder: LocalEmbedder) -> CountingEmbedder:
    return CountingEmbedder(local_embedder)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", **overrides)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def store(settings: Settings, embedder: CountingEmbedder) -> Iterator[RagStore]:
    with RagStore.open(settings, embedder=embedder) as opened:
        yield opened
