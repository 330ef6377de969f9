"""Milvus behind the VectorIndex contract, through pymilvus `MilvusClient`.

`RAGSTORE_MILVUS_URI` is a local path (Milvus Lite: the database lives in that folder, one process at a time) or
`http://host:19530` (a server or a cluster, any number of processes). The same code serves both; what
differs is written where it matters:

- One Milvus collection per ragstore collection, `{prefix}c{id}`: the chunk id is the primary key, then the
  vector (the collection's dimension: 384 for the local model, 1536 for OpenAI), `document_id`,
  `collection_id` and `content_hash` scalar fields, and dynamic fields for the document's metadata.
- The index type follows the data size: FLAT (exact) below `MILVUS_HNSW_THRESHOLD` vectors, HNSW above it
  (docs/benchmarks.md has the measurement). Milvus Lite reads build parameters only nested under
  `params` and uses its own defaults otherwise; a server reads them flat. Both forms are sent.
- New rows sit in a growing segment that is searched by brute force until it is flushed; `persist()`
  (called by the sync worker) flushes what changed, which also lets Lite save its index files.
- After a restart a collection is `released`: `ensure_collection` loads it.
- Transient failures (a server restarting, a dropped connection) are retried with exponential backoff;
  what still fails becomes `Unavailable`, which the outbox turns into a retry later, never a lost write.

The index is *shared*: every process talks to the same Milvus, so an operation applied by one process is
in it for all, and nobody replays another's work (`sync/applier.py`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ragstore.errors import InvalidInput, Unavailable
from ragstore.secrets_mask import mask
from ragstore.vectors.base import CollectionSpec, Ids, SearchMode, VectorHit, VectorIndex, VectorRecord, Vectors
from ragstore.vectors.remote import RemoteStore, collection_ids

# pymilvus reads MILVUS_URI (and the older MILVUS_DEFAULT_CONNECTION) when it is imported, to set up a
# default connection, and refuses a path there ("Illegal uri") before ragstore runs; it also loads the first
# `.env` above its install folder into os.environ, which would turn a project's `.env` into environment
# variables that outrank `.env.{profile}`. ragstore passes the URI to every client it makes and never uses
# that default, so pymilvus is imported with both variables blank and its `.env` loading off, and the
# environment is put back as it was. This is the one module that imports pymilvus.
_PYMILVUS_ENV = {"MILVUS_URI": "", "MILVUS_DEFAULT_CONNECTION": "", "PYTHON_DOTENV_DISABLED": "1"}
_saved_env = {name: os.environ.get(name) for name in _PYMILVUS_ENV}
os.environ.update(_PYMILVUS_ENV)
try:
    # Without the `milvus` extra this import fails, and the registry names the extra to install.
    from pymilvus import DataType, MilvusClient, MilvusException
finally:
    for _name, _value in _saved_env.items():
        if _value is None:
            os.environ.pop(_name, None)
        else:
            os.environ[_name] = _value

__all__ = ["MilvusVectorIndex"]

log = logging.getLogger(__name__)
T = TypeVar("T")

FIELDS = ("id", "vector", "document_id", "collection_id", "content_hash")
# Milvus caps a query or search at 16,384 results (Lite does not, a server does).
MAX_LIMIT = 16_384
# Up to this many allowed ids go into the search filter (`id in [...]`); beyond, the search widens instead.
FILTER_IDS = 20_000
WRITE_BATCH = 2_000
# Codes that retrying cannot fix: a wrong parameter, a missing collection.
PERMANENT_CODES = frozenset({6, 100, 1100})
HNSW_PARAMS = {"M": 16, "efConstruction": 200}


def is_lite(uri: str) -> bool:
    """A path (Milvus Lite) rather than a server address."""
    return "://" not in uri


class MilvusVectorIndex(RemoteStore, VectorIndex):
    name = "milvus"
    wants_records = True

    def __init__(
        self,
        uri: str,
        *,
        user: str = "",
        password: str = "",
        timeout_s: float = 10.0,
        prefix: str = "ragstore_",
        hnsw_threshold: int = 1_000,
        ef_search: int = 64,
        retries: int = 4,
        backoff_s: float = 0.2,
    ) -> None:
        self.uri = uri
        self.lite = is_lite(uri)
        self.where = f"Milvus Lite {uri}" if self.lite else mask(uri)
        if self.lite:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.hnsw_threshold = hnsw_threshold
        self.ef_search = ef_search
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._lock = threading.RLock()
        self._dimensions: dict[int, int] = {}
        self._index_type: dict[int, str] = {}
        self._ef: dict[int, int] = {}  # HNSW `ef` tuned per collection (vectors/tuning.py); else ef_search
        self._dirty: set[int] = set()
        self._credentials = (user, password)
        self._client: MilvusClient | None = None

    @property
    def client(self) -> MilvusClient:
        """Connected on first use, so a store opens (degraded) while Milvus is down and connects later."""
        if self._client is None:
            user, password = self._credentials
            try:
                self._client = MilvusClient(uri=self.uri, user=user, password=password, timeout=self.timeout_s)
            except MilvusException as exc:
                raise Unavailable(f"{self.where}: cannot connect: {exc.message}") from exc
        return self._client

    def _transient(self, exc: Exception) -> bool:
        if isinstance(exc, MilvusException):
            return exc.code not in PERMANENT_CODES
        return isinstance(exc, (ConnectionError, TimeoutError, OSError))

    def _describe(self, exc: Exception) -> str:
        return f"{exc.message} (code {exc.code})" if isinstance(exc, MilvusException) else str(exc)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """One client call, retried on transient failures (a permanent code is a wrong call: not retried)."""
        try:
            return self._retried(what, fn)
        except MilvusException as exc:  # permanent: a wrong call, surfaced as the store refusing it
            raise Unavailable(f"{self.where}: {what} failed: {self._describe(exc)}") from exc

    # -- collections -----------------------------------------------------------------------------------------
    def _index_params(self, index_type: str) -> Any:
        params = self.client.prepare_index_params()
        if index_type == "HNSW":
            # Flat for a server, nested under "params" for Lite (which reads only that key).
            params.add_index(
                field_name="vector",
                index_type="HNSW",
                metric_type="COSINE",
                params={**HNSW_PARAMS, "params": dict(HNSW_PARAMS)},
            )
        else:
            params.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
        return params

    def ensure_collection(self, spec: CollectionSpec) -> None:
        name = self._name(spec.id)
        with self._lock:
            known = self._dimensions.get(spec.id)
            if known is not None:
                if known != spec.dimension:
                    raise InvalidInput(f"collection {spec.id} has dimension {known} in Milvus, not {spec.dimension}")
                return
            if self._call("has_collection", lambda: self.client.has_collection(name)):
                held = self._described_dimension(spec.id)
                if held is not None and held != spec.dimension:
                    raise InvalidInput(f"collection {spec.id} has dimension {held} in Milvus, not {spec.dimension}")
                self._load(name)
            else:
                schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
                schema.add_field("id", DataType.INT64, is_primary=True)
                schema.add_field("vector", DataType.FLOAT_VECTOR, dim=spec.dimension)
                schema.add_field("document_id", DataType.INT64)
                schema.add_field("collection_id", DataType.INT64)
                schema.add_field("content_hash", DataType.VARCHAR, max_length=64)
                self._call(
                    "create_collection",
                    lambda: self.client.create_collection(
                        name, schema=schema, index_params=self._index_params("FLAT"), consistency_level="Strong"
                    ),
                )
            self._dimensions[spec.id] = spec.dimension
            self._index_type[spec.id] = self._current_index_type(name)

    def _load(self, name: str) -> None:
        """A collection is `released` after a restart; searching it then fails until it is loaded."""
        state = self._call("get_load_state", lambda: self.client.get_load_state(name))
        if "Loaded" not in str(state.get("state", "")):
            self._call("load_collection", lambda: self.client.load_collection(name))

    def _current_index_type(self, name: str) -> str:
        try:
            described = self.client.describe_index(name, "vector")
        except MilvusException:
            return "FLAT"
        return str((described or {}).get("index_type", "FLAT"))

    def _described_dimension(self, collection_id: int) -> int | None:
        name = self._name(collection_id)
        described = self._call("describe_collection", lambda: self.client.describe_collection(name))
        for f in described.get("fields", []):
            if f.get("name") == "vector":
                return int(f.get("params", {}).get("dim", 0)) or None
        return None

    def drop_collection(self, collection_id: int) -> None:
        with self._lock:
            self._call("drop_collection", lambda: self.client.drop_collection(self._name(collection_id)))
            self._dimensions.pop(collection_id, None)
            self._index_type.pop(collection_id, None)
            self._dirty.discard(collection_id)

    def _opened(self, collection_id: int) -> int | None:
        """The dimension of a collection ready to search, loading one this process has not opened yet (the
        store opened while Milvus was down); None if Milvus holds no such collection."""
        dim = self._dimensions.get(collection_id)
        if dim is not None:
            return dim
        with self._lock:
            dim = self.dimension(collection_id)
            if dim is not None:
                name = self._name(collection_id)
                self._load(name)
                self._dimensions[collection_id] = dim
                self._index_type[collection_id] = self._current_index_type(name)
            return dim

    def _dimension_of(self, collection_id: int) -> int:
        dim = self._dimensions.get(collection_id)
        if dim is None:
            raise InvalidInput(f"vector collection {collection_id} is not open in Milvus")
        return dim

    # -- writes ----------------------------------------------------------------------------------------------
    def upsert(
        self, collection_id: int, ids: Ids, vectors: Vectors, records: Sequence[VectorRecord] | None = None
    ) -> None:
        if len(ids) == 0:
            return
        dim = self._dimension_of(collection_id)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise InvalidInput(f"vectors must have dimension {dim}, got shape {vectors.shape}")
        name = self._name(collection_id)
        rows = []
        for i, key in enumerate(np.asarray(ids, dtype=np.int64).tolist()):
            record = records[i] if records is not None else VectorRecord(0, "")
            row: dict[str, Any] = {
                f"meta_{k}" if k in FIELDS else str(k): v for k, v in record.metadata.items() if v is not None
            }
            row.update(
                id=int(key),
                vector=vectors[i],
                document_id=int(record.document_id),
                collection_id=int(collection_id),
                content_hash=record.content_hash[:64],
            )
            rows.append(row)
        with self._lock:
            for start in range(0, len(rows), WRITE_BATCH):
                part = rows[start : start + WRITE_BATCH]
                self._call("upsert", lambda part=part: self.client.upsert(name, data=part))  # type: ignore[misc]
            self._dirty.add(collection_id)

    def delete(self, collection_id: int, ids: Ids) -> None:
        if len(ids) == 0:
            return
        name = self._name(collection_id)
        keys = [int(i) for i in np.asarray(ids, dtype=np.int64).tolist()]
        with self._lock:
            if not self._call("has_collection", lambda: self.client.has_collection(name)):
                return
            for start in range(0, len(keys), WRITE_BATCH):
                part = keys[start : start + WRITE_BATCH]
                self._call("delete", lambda part=part: self.client.delete(name, ids=part))  # type: ignore[misc]
            self._dirty.add(collection_id)

    # -- reads -----------------------------------------------------------------------------------------------
    def search(
        self, collection_id: int, vector: Vectors, k: int, allowed_ids: Sequence[int] | None = None
    ) -> list[VectorHit]:
        return self._search(collection_id, vector, k, allowed_ids, self._ef.get(collection_id, self.ef_search))

    def search_at(self, collection_id: int, vector: Vectors, k: int, ef: int) -> list[VectorHit]:
        """`ef` is a parameter of each search call: nothing is set, so no other search sees it."""
        return self._search(collection_id, vector, k, None, ef)

    def search_mode(self, collection_id: int) -> SearchMode:
        """HNSW past MILVUS_HNSW_THRESHOLD (after the flush that switches it), FLAT (exact) before."""
        return "graph" if self.index_type(collection_id) == "HNSW" else "exact"

    def set_expansion_search(self, collection_id: int, ef: int | None) -> int | None:
        with self._lock:
            previous = self._ef.pop(collection_id, None)
            if ef is not None:
                self._ef[collection_id] = ef
            return previous

    def _search(
        self, collection_id: int, vector: Vectors, k: int, allowed_ids: Sequence[int] | None, ef: int
    ) -> list[VectorHit]:
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        dim = self._opened(collection_id)
        if dim is None or k <= 0:
            return []
        if query.shape[1] != dim:
            raise InvalidInput(f"query vector has dimension {query.shape[1]}, the collection {dim}")
        if allowed_ids is not None and not len(allowed_ids):
            return []
        name = self._name(collection_id)
        params = {"metric_type": "COSINE", "params": {"ef": max(ef, min(k, MAX_LIMIT))}}

        def run(limit: int, expr: str) -> list[VectorHit]:
            found = self._call(
                "search",
                lambda: self.client.search(
                    name, data=query, limit=limit, filter=expr, output_fields=["id"], search_params=params
                ),
            )
            return [VectorHit(int(h["id"]), float(h["distance"])) for h in (found[0] if found else [])]

        if allowed_ids is None:
            return run(min(k, MAX_LIMIT), "")
        if len(allowed_ids) <= FILTER_IDS:
            return run(min(k, MAX_LIMIT), f"id in [{','.join(str(int(i)) for i in allowed_ids)}]")
        allowed = {int(i) for i in allowed_ids}
        fetch = k * 4
        while True:
            limit = min(fetch, MAX_LIMIT)
            hits = [h for h in run(limit, "") if h.id in allowed]
            if len(hits) >= k or limit >= MAX_LIMIT:
                return hits[:k]
            fetch *= 4

    def count(self, collection_id: int) -> int:
        name = self._name(collection_id)
        if not self._call("has_collection", lambda: self.client.has_collection(name)):
            return 0
        stats = self._call("get_collection_stats", lambda: self.client.get_collection_stats(name))
        return int(stats.get("row_count", 0))

    def iter_ids(self, collection_id: int, batch_size: int = 10_000) -> Iterator[Ids]:
        name = self._name(collection_id)
        if not self._call("has_collection", lambda: self.client.has_collection(name)):
            return
        self._flush(collection_id)
        iterator = self._call(
            "query_iterator",
            lambda: self.client.query_iterator(name, batch_size=min(batch_size, MAX_LIMIT), output_fields=["id"]),
        )
        try:
            while True:
                batch = self._call("query_iterator.next", iterator.next)
                if not batch:
                    return
                yield np.fromiter((int(r["id"]) for r in batch), dtype=np.int64, count=len(batch))
        finally:
            iterator.close()

    def get(self, collection_id: int, ids: Ids) -> tuple[Ids, Vectors]:
        dim = self._dimensions.get(collection_id) or self.dimension(collection_id) or 0
        name = self._name(collection_id)
        keys = [int(i) for i in np.asarray(ids, dtype=np.int64).tolist()]
        found_ids: list[int] = []
        found: list[Any] = []
        if keys and self._call("has_collection", lambda: self.client.has_collection(name)):
            for start in range(0, len(keys), MAX_LIMIT):
                part = keys[start : start + MAX_LIMIT]
                rows = self._call(
                    "get",
                    lambda part=part: self.client.get(name, ids=part, output_fields=["id", "vector"]),  # type: ignore[misc]
                )
                for r in rows:
                    found_ids.append(int(r["id"]))
                    found.append(r["vector"])
        matrix = np.asarray(found, dtype=np.float32).reshape(len(found_ids), dim)
        return np.asarray(found_ids, dtype=np.int64), matrix

    def collection_ids(self) -> list[int]:
        return collection_ids(self._call("list_collections", lambda: self.client.list_collections()), self.prefix)

    def dimension(self, collection_id: int) -> int | None:
        known = self._dimensions.get(collection_id)
        if known is not None:
            return known
        name = self._name(collection_id)
        if not self._call("has_collection", lambda: self.client.has_collection(name)):
            return None
        return self._described_dimension(collection_id)

    # -- durability (shared: applied_seq and mark_applied keep VectorIndex's defaults) ----------------------
    def _flush(self, collection_id: int) -> None:
        with self._lock:
            if collection_id in self._dirty:
                self._call("flush", lambda: self.client.flush(self._name(collection_id)))
                self._dirty.discard(collection_id)
                self._choose_index(collection_id)

    def _choose_index(self, collection_id: int) -> None:
        """FLAT while small (exact, nothing to build), HNSW once the collection passes the threshold."""
        wanted = "HNSW" if self.count(collection_id) >= self.hnsw_threshold else "FLAT"
        if self._index_type.get(collection_id, "FLAT") == wanted:
            return
        name = self._name(collection_id)
        log.info("%s: %s grows past %d vectors, index %s", self.where, name, self.hnsw_threshold, wanted)
        self._call("release_collection", lambda: self.client.release_collection(name))
        self._call("drop_index", lambda: self.client.drop_index(name, "vector"))
        self._call("create_index", lambda: self.client.create_index(name, self._index_params(wanted)))
        self._call("load_collection", lambda: self.client.load_collection(name))
        self._index_type[collection_id] = wanted

    def index_type(self, collection_id: int) -> str:
        return self._index_type.get(collection_id) or self._current_index_type(self._name(collection_id))

    def persist(self) -> None:
        for cid in list(self._dirty):
            self._flush(cid)

    def close(self) -> None:
        if self._client is None:
            return
        try:
            self.persist()
        finally:
            self._client.close()
