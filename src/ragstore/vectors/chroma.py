"""ChromaDB behind the VectorIndex contract: an embedded `PersistentClient` folder, or a server by URL.

ragstore always passes its own vectors: collections are created with no embedding function, so Chroma
never downloads or runs a model. One Chroma collection per ragstore collection, `{prefix}c{id}`, cosine
space; ids are the chunk ids as strings; metadata holds `document_id`, `content_hash` and the document's
scalar metadata (Chroma accepts only str, int, float and bool values).

What the probe of chromadb 1.5 found, and the code follows: replacing an existing id by `upsert` costs
about 4 ms per id against under 1 ms for delete-then-add, so replacements delete first; a batch holds at
most `get_max_batch_size()` rows; `query(ids=...)` fails if any listed id is missing, so allowed ids are
narrowed to present ones first; distances are `1 - cosine`.

Like Milvus the store is *shared* (an operation applied by one process is there for all). The embedded
client is one process's; for several processes run a Chroma server and set `CHROMA_URL`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

# Without the `chroma` extra this import fails, and the registry names the extra to install.
import chromadb
import numpy as np
from chromadb.errors import InvalidArgumentError, NotFoundError

from ragstore.errors import InvalidInput, Unavailable
from ragstore.secrets_mask import mask
from ragstore.vectors.base import CollectionSpec, Ids, VectorHit, VectorIndex, VectorRecord, Vectors
from ragstore.vectors.remote import RemoteStore, collection_ids

__all__ = ["ChromaVectorIndex"]

log = logging.getLogger(__name__)
T = TypeVar("T")
SCALARS = (str, int, float, bool)


class ChromaVectorIndex(RemoteStore, VectorIndex):
    name = "chroma"
    wants_records = True

    def __init__(
        self,
        *,
        path: Path | None = None,
        url: str | None = None,
        prefix: str = "ragstore_",
        retries: int = 3,
        backoff_s: float = 0.2,
    ) -> None:
        from chromadb.config import Settings as ChromaSettings

        self.where = mask(url) if url else f"Chroma {path}"
        self.prefix = prefix
        self.retries = retries
        self.backoff_s = backoff_s
        self._chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        self._path, self._url = path, url
        self._client: Any = None
        self._max_batch = 0
        self._lock = threading.RLock()
        self._collections: dict[int, Any] = {}
        self._dimensions: dict[int, int] = {}

    @property
    def client(self) -> Any:
        """Connected on first use, so a store opens (degraded) while a Chroma server is down."""
        if self._client is None:
            try:
                if self._url:
                    parsed = urlparse(self._url)
                    client = chromadb.HttpClient(
                        host=parsed.hostname or "localhost",
                        port=parsed.port or 8000,
                        ssl=parsed.scheme == "https",
                        settings=self._chroma_settings,
                    )
                else:
                    assert self._path is not None
                    self._path.mkdir(parents=True, exist_ok=True)
                    client = chromadb.PersistentClient(path=str(self._path), settings=self._chroma_settings)
                self._max_batch = int(client.get_max_batch_size())
            except Exception as exc:  # chromadb, httpx and OS errors alike: the store is not there
                raise Unavailable(f"{self.where}: cannot connect: {type(exc).__name__}: {exc}") from exc
            self._client = client
        return self._client

    @property
    def max_batch(self) -> int:
        self.client  # noqa: B018 - connects, which reads the server's batch limit
        return self._max_batch

    def _transient(self, exc: Exception) -> bool:
        # Not a refusal (a wrong argument, a missing collection) nor an unreachable server (the lazy client
        # already failed to connect).
        return not isinstance(exc, (InvalidArgumentError, NotFoundError, Unavailable))

    def _describe(self, exc: Exception) -> str:
        return f"{type(exc).__name__}: {exc}"

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """One client call, retried on transient failures; a wrong argument is the caller's error."""
        try:
            return self._retried(what, fn)
        except InvalidArgumentError as exc:
            raise InvalidInput(f"{self.where}: {what}: {exc}") from exc

    def _collection(self, collection_id: int) -> Any | None:
        col = self._collections.get(collection_id)
        if col is not None:
            return col
        try:
            col = self._call(
                "get_collection", lambda: self.client.get_collection(self._name(collection_id), embedding_function=None)
            )
        except NotFoundError:
            return None
        self._collections[collection_id] = col
        return col

    # -- collections -----------------------------------------------------------------------------------------
    def ensure_collection(self, spec: CollectionSpec) -> None:
        with self._lock:
            known = self.dimension(spec.id)
            if known is not None and known != spec.dimension:
                raise InvalidInput(f"collection {spec.id} has dimension {known} in Chroma, not {spec.dimension}")
            if self._collection(spec.id) is None:
                self._collections[spec.id] = self._call(
                    "create_collection",
                    lambda: self.client.get_or_create_collection(
                        self._name(spec.id),
                        metadata={"hnsw:space": "cosine", "ragstore_dimension": spec.dimension},
                        embedding_function=None,
                    ),
                )
            self._dimensions[spec.id] = spec.dimension

    def drop_collection(self, collection_id: int) -> None:
        with self._lock:
            self._collections.pop(collection_id, None)
            self._dimensions.pop(collection_id, None)
            with contextlib.suppress(NotFoundError):
                self._call("delete_collection", lambda: self.client.delete_collection(self._name(collection_id)))

    # -- writes ----------------------------------------------------------------------------------------------
    def upsert(
        self, collection_id: int, ids: Ids, vectors: Vectors, records: Sequence[VectorRecord] | None = None
    ) -> None:
        if len(ids) == 0:
            return
        dim = self._dimensions.get(collection_id)
        col = self._collection(collection_id)
        if col is None or dim is None:
            raise InvalidInput(f"vector collection {collection_id} is not open in Chroma")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise InvalidInput(f"vectors must have dimension {dim}, got shape {vectors.shape}")
        keys = [str(int(i)) for i in np.asarray(ids, dtype=np.int64).tolist()]
        metadatas = []
        for i in range(len(keys)):
            record = records[i] if records is not None else VectorRecord(0, "")
            meta: dict[str, Any] = {
                f"meta_{k}": v for k, v in record.metadata.items() if isinstance(v, SCALARS) and v is not None
            }
            meta.update(document_id=int(record.document_id), content_hash=record.content_hash)
            metadatas.append(meta)
        with self._lock:
            for start in range(0, len(keys), self.max_batch):
                part = keys[start : start + self.max_batch]
                present = self._call("get", lambda part=part: col.get(ids=part, include=[])["ids"])  # type: ignore[misc]
                if present:
                    self._call("delete", lambda present=present: col.delete(ids=present))  # type: ignore[misc]
                self._call(
                    "add",
                    lambda part=part, start=start: col.add(  # type: ignore[misc]
                        ids=part,
                        embeddings=vectors[start : start + len(part)],
                        metadatas=metadatas[start : start + len(part)],
                    ),
                )

    def delete(self, collection_id: int, ids: Ids) -> None:
        if len(ids) == 0:
            return
        col = self._collection(collection_id)
        if col is None:
            return
        keys = [str(int(i)) for i in np.asarray(ids, dtype=np.int64).tolist()]
        with self._lock:
            for start in range(0, len(keys), self.max_batch):
                part = keys[start : start + self.max_batch]
                self._call("delete", lambda part=part: col.delete(ids=part))  # type: ignore[misc]

    # -- reads -----------------------------------------------------------------------------------------------
    def search(
        self, collection_id: int, vector: Vectors, k: int, allowed_ids: Sequence[int] | None = None
    ) -> list[VectorHit]:
        col = self._collection(collection_id)
        dim = self.dimension(collection_id) if col is not None else None
        if col is None or dim is None or k <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != dim:
            raise InvalidInput(f"query vector has dimension {query.shape[1]}, the collection {dim}")
        kwargs: dict[str, Any] = {}
        if allowed_ids is not None:
            keys = [str(int(i)) for i in allowed_ids]
            present: list[str] = []
            for start in range(0, len(keys), self.max_batch):
                part = keys[start : start + self.max_batch]
                present += self._call("get", lambda part=part: col.get(ids=part, include=[])["ids"])  # type: ignore[misc]
            if not present:
                return []
            kwargs["ids"] = present
        found = self._call(
            "query", lambda: col.query(query_embeddings=query, n_results=k, include=["distances"], **kwargs)
        )
        ids, distances = found["ids"][0], found["distances"][0]
        return [VectorHit(int(i), 1.0 - float(d)) for i, d in zip(ids, distances, strict=True)]

    def count(self, collection_id: int) -> int:
        col = self._collection(collection_id)
        return 0 if col is None else int(self._call("count", col.count))

    def iter_ids(self, collection_id: int, batch_size: int = 10_000) -> Iterator[Ids]:
        col = self._collection(collection_id)
        if col is None:
            return
        offset = 0
        while True:
            page = self._call(
                "get",
                lambda offset=offset: col.get(include=[], limit=batch_size, offset=offset)["ids"],  # type: ignore[misc]
            )
            if not page:
                return
            yield np.asarray([int(i) for i in page], dtype=np.int64)
            offset += len(page)

    def get(self, collection_id: int, ids: Ids) -> tuple[Ids, Vectors]:
        dim = self._dimensions.get(collection_id) or self.dimension(collection_id) or 0
        col = self._collection(collection_id)
        keys = [str(int(i)) for i in np.asarray(ids, dtype=np.int64).tolist()]
        found_ids: list[int] = []
        found: list[Any] = []
        if col is not None:
            for start in range(0, len(keys), self.max_batch):
                part = keys[start : start + self.max_batch]
                got = self._call("get", lambda part=part: col.get(ids=part, include=["embeddings"]))  # type: ignore[misc]
                found_ids += [int(i) for i in got["ids"]]
                found += list(got["embeddings"]) if got["embeddings"] is not None else []
        matrix = np.asarray(found, dtype=np.float32).reshape(len(found_ids), dim)
        return np.asarray(found_ids, dtype=np.int64), matrix

    def collection_ids(self) -> list[int]:
        listed = self._call("list_collections", lambda: self.client.list_collections())
        return collection_ids((getattr(c, "name", c) for c in listed), self.prefix)

    def dimension(self, collection_id: int) -> int | None:
        known = self._dimensions.get(collection_id)
        if known is not None:
            return known
        col = self._collection(collection_id)
        if col is None:
            return None
        meta = col.metadata or {}
        if "ragstore_dimension" in meta:
            return int(meta["ragstore_dimension"])
        sample = self._call("get", lambda: col.get(limit=1, include=["embeddings"]))
        embeddings = sample.get("embeddings")
        return len(embeddings[0]) if embeddings is not None and len(embeddings) else None

    # -- durability (shared, and Chroma writes through on every call: VectorIndex's defaults hold) ----------
    def close(self) -> None:
        self._collections.clear()
