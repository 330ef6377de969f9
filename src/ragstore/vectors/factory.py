"""Choose the VectorIndex from Settings: one registry, no backend checks scattered through the code."""

from __future__ import annotations

from collections.abc import Callable

from ragstore.config import Settings
from ragstore.errors import ConfigError
from ragstore.vectors.base import VectorIndex

__all__ = [
    "BACKENDS",
    "PROCESS_LOCAL_BACKENDS",
    "check_server_processes",
    "create_vector_index",
    "single_process_store",
]


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


def _milvus(settings: Settings) -> VectorIndex:
    try:
        from ragstore.vectors.milvus import MilvusVectorIndex
    except ImportError as exc:
        raise ConfigError(str(exc)) from exc
    return MilvusVectorIndex(
        settings.milvus_location,
        user=settings.milvus_user,
        password=settings.milvus_password.get_secret_value(),
        timeout_s=settings.milvus_timeout_s,
        prefix=settings.milvus_collection_prefix,
        hnsw_threshold=settings.milvus_hnsw_threshold,
        ef_search=settings.hnsw_expansion_search,
    )


def _chroma(settings: Settings) -> VectorIndex:
    try:
        from ragstore.vectors.chroma import ChromaVectorIndex
    except ImportError as exc:
        raise ConfigError(str(exc)) from exc
    return ChromaVectorIndex(path=settings.chroma_location, url=settings.chroma_url)


BACKENDS: dict[str, Callable[[Settings], VectorIndex]] = {
    "embedded": _embedded,
    "memory": _memory,
    "milvus": _milvus,
    "chroma": _chroma,
}


def single_process_store(settings: Settings) -> str | None:
    """What keeps the vector store to one process (Milvus Lite's folder lock, an embedded Chroma), or None."""
    if settings.vector_backend == "milvus" and "://" not in settings.milvus_location:
        return f"Milvus Lite ({settings.milvus_location}) is opened by one process at a time"
    if settings.vector_backend == "chroma" and settings.chroma_url is None:
        return f"the embedded Chroma store ({settings.chroma_location}) belongs to one process; set CHROMA_URL"
    return None


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
    local_store = single_process_store(settings)
    if processes > 1 and local_store is not None:
        raise ConfigError(f"--workers {processes}: {local_store}. Use a Milvus server (MILVUS_URI=http://...).")
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
