"""Choose the VectorIndex from Settings: one registry, no backend checks scattered through the code."""

from __future__ import annotations

from collections.abc import Callable

from ragstore.config import Settings
from ragstore.errors import ConfigError
from ragstore.vectors.base import VectorIndex

__all__ = ["BACKENDS", "create_vector_index"]


def _embedded(settings: Settings) -> VectorIndex:
    from ragstore.vectors.embedded import EmbeddedVectorIndex

    return EmbeddedVectorIndex(
        settings.index_dir,
        connectivity=settings.hnsw_connectivity,
        expansion_add=settings.hnsw_expansion_add,
        expansion_search=settings.hnsw_expansion_search,
        dtype=settings.hnsw_dtype,
    )


def _memory(settings: Settings) -> VectorIndex:
    from ragstore.vectors.memory import MemoryVectorIndex

    return MemoryVectorIndex()


BACKENDS: dict[str, Callable[[Settings], VectorIndex]] = {"embedded": _embedded, "memory": _memory}


def create_vector_index(settings: Settings) -> VectorIndex:
    try:
        factory = BACKENDS[settings.vector_backend]
    except KeyError:
        raise ConfigError(f"RAGSTORE_VECTOR_BACKEND: unknown backend {settings.vector_backend!r}") from None
    return factory(settings)
