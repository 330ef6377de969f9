"""Choose the VectorIndex from Settings: one registry, no backend checks scattered through the code."""

from __future__ import annotations

from collections.abc import Callable

from ragstore.config import Settings
from ragstore.errors import ConfigError
from ragstore.vectors.base import VectorIndex

__all__ = ["BACKENDS", "PROCESS_LOCAL_BACKENDS", "check_server_processes", "create_vector_index"]


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
# Backends whose index lives in one process's memory: a second process would hold a second copy that no
# write of the first ever reaches, so its searches would silently miss documents.
PROCESS_LOCAL_BACKENDS = frozenset({"embedded", "memory"})


def check_server_processes(settings: Settings, processes: int) -> None:
    """Refuse more than one server process over an index that only one process can hold."""
    if processes > 1 and settings.vector_backend in PROCESS_LOCAL_BACKENDS:
        raise ConfigError(
            f"--workers {processes}: RAGSTORE_VECTOR_BACKEND={settings.vector_backend} keeps the vector index in "
            "one process's memory, and several server processes would each hold a copy that the others' writes "
            "never reach. Run one process (it serves concurrent requests on threads) or a vector backend that "
            "processes share."
        )


def create_vector_index(settings: Settings) -> VectorIndex:
    try:
        factory = BACKENDS[settings.vector_backend]
    except KeyError:
        raise ConfigError(f"RAGSTORE_VECTOR_BACKEND: unknown backend {settings.vector_backend!r}") from None
    return factory(settings)
