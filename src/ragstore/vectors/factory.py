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
    """Refuse more than one server process in the embedded profile (SQLite + a process-local index).

    Over PostgreSQL each process holds its own replica of a process-local index, which follows the outbox
    (`sync/applier.py`), so N processes are safe there. On SQLite they would be safe too, but never
    faster: SQLite takes one writer at a time, threads already serve concurrent requests, and every
    process would hold its own copy of the whole index in memory.
    """
    if processes > 1 and settings.vector_backend in PROCESS_LOCAL_BACKENDS and settings.is_sqlite:
        raise ConfigError(
            f"--workers {processes}: the embedded profile (SQLite with RAGSTORE_VECTOR_BACKEND="
            f"{settings.vector_backend}) runs one server process, which serves concurrent requests on threads. "
            "For several processes set DATABASE_URL to PostgreSQL: each process then keeps its own replica of "
            "the index, kept level through the outbox."
        )


def create_vector_index(settings: Settings) -> VectorIndex:
    try:
        factory = BACKENDS[settings.vector_backend]
    except KeyError:
        raise ConfigError(f"RAGSTORE_VECTOR_BACKEND: unknown backend {settings.vector_backend!r}") from None
    return factory(settings)
