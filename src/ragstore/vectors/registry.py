"""The registry of vector backends: one `BackendSpec` per backend, and everyone asks the spec.

A backend's name appears here and in its own module only. What the rest of ragstore needs to know about a
backend is a field of its spec, never a comparison with its name: whether each process holds its own replica
(`process_local`), whether it keeps the vectors across restarts (`persistent`: only those may be recorded as
a store's backend or be the target of `ragstore index migrate`), and whether its index is files that backups
carry (`files`, the backend's `KeepsFiles` class). Adding a backend: docs/backends.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ragstore.config import Settings
from ragstore.errors import ConfigError
from ragstore.vectors.base import KeepsFiles, VectorIndex

__all__ = [
    "BACKENDS",
    "PROCESS_LOCAL_BACKENDS",
    "BackendSpec",
    "backend_spec",
    "check_server_processes",
    "checked_spec",
    "create_vector_index",
    "migration_targets",
    "self_contained_backend",
    "single_process_store",
]


def _any_number_of_processes(settings: Settings) -> str | None:
    return None


@dataclass(frozen=True)
class BackendSpec:
    """What ragstore knows about one vector backend, declared once.

    `factory` builds the index from Settings and imports the backend's module inside (an optional backend's
    dependency is imported only when chosen); `extra` is the pip extra that provides that dependency (None
    for a core one). `single_process` says what confines a configuration to one process (Milvus Lite's
    folder lock), or None.
    """

    name: str
    factory: Callable[[Settings], VectorIndex]
    description: str
    extra: str | None = None
    process_local: bool = False
    persistent: bool = True
    files: Callable[[], type[KeepsFiles]] | None = None
    single_process: Callable[[Settings], str | None] = _any_number_of_processes

    @property
    def keeps_files(self) -> bool:
        """The index is files in `Settings.index_dir`, which a backup copies and a restore puts back."""
        return self.files is not None

    def file_keeper(self) -> type[KeepsFiles]:
        """The class that exports, verifies and places this backend's files."""
        if self.files is None:
            raise ValueError(f"the {self.name} vector backend keeps no files")
        return self.files()

    def create(self, settings: Settings) -> VectorIndex:
        """The index, or ConfigError naming the extra to install when the backend's package is missing."""
        try:
            return self.factory(settings)
        except ImportError as exc:
            if self.extra is None:
                raise
            raise ConfigError(
                f"RAGSTORE_VECTOR_BACKEND={self.name} needs the '{self.extra}' extra: "
                f"pip install 'ragstore[{self.extra}]' ({exc})"
            ) from exc


# -- the backends ----------------------------------------------------------------------------------------
def _embedded(settings: Settings) -> VectorIndex:
    from ragstore.vectors.embedded import EmbeddedVectorIndex

    return EmbeddedVectorIndex(
        settings.index_dir,
        connectivity=settings.hnsw_connectivity,
        expansion_add=settings.hnsw_expansion_add,
        expansion_search=settings.hnsw_expansion_search,
        dtype=settings.index_dtype,
    )


def _embedded_files() -> type[KeepsFiles]:
    from ragstore.vectors.embedded import EmbeddedVectorIndex

    return EmbeddedVectorIndex


def _memory(settings: Settings) -> VectorIndex:
    from ragstore.vectors.memory import MemoryVectorIndex

    return MemoryVectorIndex()


def _milvus(settings: Settings) -> VectorIndex:
    from ragstore.vectors.milvus import MilvusVectorIndex

    return MilvusVectorIndex(
        settings.milvus_location,
        user=settings.milvus_user,
        password=settings.milvus_password.get_secret_value(),
        timeout_s=settings.milvus_timeout_s,
        prefix=settings.milvus_collection_prefix,
        hnsw_threshold=settings.milvus_hnsw_threshold,
        ef_search=settings.hnsw_expansion_search,
    )


def _milvus_lite(settings: Settings) -> str | None:
    if "://" not in settings.milvus_location:
        return f"Milvus Lite ({settings.milvus_location}) is opened by one process at a time"
    return None


def _chroma(settings: Settings) -> VectorIndex:
    from ragstore.vectors.chroma import ChromaVectorIndex

    return ChromaVectorIndex(path=settings.chroma_location, url=settings.chroma_url)


def _embedded_chroma(settings: Settings) -> str | None:
    if settings.chroma_url is None:
        return f"the embedded Chroma store ({settings.chroma_location}) belongs to one process; set CHROMA_URL"
    return None


BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            "embedded",
            _embedded,
            "usearch HNSW files beside the database (the default)",
            process_local=True,
            files=_embedded_files,
        ),
        BackendSpec(
            "memory",
            _memory,
            "exact, in memory, rebuilt from SQL at every open (tests)",
            process_local=True,
            persistent=False,
        ),
        BackendSpec(
            "milvus",
            _milvus,
            "Milvus Lite (a path) or a Milvus server (a URI)",
            extra="milvus",
            single_process=_milvus_lite,
        ),
        BackendSpec(
            "chroma",
            _chroma,
            "an embedded Chroma store, or a server (CHROMA_URL)",
            extra="chroma",
            single_process=_embedded_chroma,
        ),
    )
}
# Backends whose index lives in one process's memory: a second process would hold a second copy that no
# write of the first ever reaches, unless it follows the outbox (sync/applier.py).
PROCESS_LOCAL_BACKENDS = frozenset(name for name, spec in BACKENDS.items() if spec.process_local)


# -- questions asked of the registry ---------------------------------------------------------------------
def backend_spec(name: str) -> BackendSpec:
    """The spec registered under `name`; ConfigError for an unknown one."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ConfigError(f"RAGSTORE_VECTOR_BACKEND: unknown backend {name!r} (one of {', '.join(BACKENDS)})") from None


def migration_targets() -> tuple[str, ...]:
    """The backends `ragstore index migrate --to` accepts: those that keep the vectors."""
    return tuple(name for name, spec in BACKENDS.items() if spec.persistent)


def self_contained_backend() -> BackendSpec:
    """The persistent backend whose index is files in the data directory: what a copy restored elsewhere
    uses when its own backend is a shared store (opening the copy must never touch the live collections)."""
    return next(spec for spec in BACKENDS.values() if spec.persistent and spec.process_local and spec.keeps_files)


def checked_spec(settings: Settings) -> BackendSpec:
    """The spec RAGSTORE_VECTOR_BACKEND names, refused (ConfigError naming the variable) when unknown, or
    when it keeps nothing on disk and the profile is production."""
    spec = backend_spec(settings.vector_backend)
    if settings.env == "production" and not spec.persistent:
        raise ConfigError(f"RAGSTORE_VECTOR_BACKEND={spec.name} keeps nothing on disk and is refused in production")
    return spec


def create_vector_index(settings: Settings) -> VectorIndex:
    """The index the settings choose."""
    return checked_spec(settings).create(settings)


def single_process_store(settings: Settings) -> str | None:
    """What keeps the vector store to one process (Milvus Lite's folder lock, an embedded Chroma), or None."""
    return backend_spec(settings.vector_backend).single_process(settings)


def check_server_processes(settings: Settings, processes: int) -> None:
    """Refuse more than one server process in the embedded profile (SQLite + a process-local index).

    Over PostgreSQL each process holds its own replica of a process-local index, which follows the outbox
    (`sync/applier.py`), so N processes are safe there. On SQLite they would be safe too, but never
    faster: SQLite takes one writer at a time, threads already serve concurrent requests, and every
    process would hold its own copy of the whole index in memory.
    """
    local_store = single_process_store(settings)
    if processes > 1 and local_store is not None:
        raise ConfigError(
            f"--workers {processes}: {local_store}. Use a Milvus server (RAGSTORE_MILVUS_URI=http://...)."
        )
    if processes > 1 and backend_spec(settings.vector_backend).process_local and settings.is_sqlite:
        raise ConfigError(
            f"--workers {processes}: the embedded profile (SQLite with RAGSTORE_VECTOR_BACKEND="
            f"{settings.vector_backend}) runs one server process, which serves concurrent requests on threads. "
            "For several processes set DATABASE_URL to PostgreSQL: each process then keeps its own replica of "
            "the index, kept level through the outbox."
        )
