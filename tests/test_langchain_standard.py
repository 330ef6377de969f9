"""LangChain's standard vector-store suite, unmodified (sync and async), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from langchain_helpers import shared_store
from ragstore.integrations.langchain import RagStoreVectorStore
from ragstore.service import RagStore


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RagStore]:
    with shared_store(request, tmp_path_factory.mktemp("langchain") / "data") as store:
        yield store


class TestRagStoreVectorStore(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, shared: RagStore) -> Iterator[VectorStore]:
        """An empty store: a collection of its own in the module's store (created on the first add)."""
        yield RagStoreVectorStore(f"lc-{uuid.uuid4().hex[:12]}", self.get_embeddings(), store=shared)
