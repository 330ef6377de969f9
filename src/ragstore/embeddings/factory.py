"""Choose the Embedder from Settings."""

from __future__ import annotations

from ragstore.config import Settings
from ragstore.embeddings.base import Embedder, UsageSink
from ragstore.embeddings.local import DEFAULT_LOCAL_MODEL, LocalEmbedder

__all__ = ["create_embedder"]


def create_embedder(settings: Settings, usage_sink: UsageSink | None = None) -> Embedder:
    if settings.embedding_backend == "openai":
        from ragstore.embeddings.openai import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(settings, usage_sink=usage_sink)
    return LocalEmbedder(
        settings.embedding_model or DEFAULT_LOCAL_MODEL,
        batch_size=settings.embedding_batch_size,
        usage_sink=usage_sink,
        engine=settings.embedding_engine,
    )
