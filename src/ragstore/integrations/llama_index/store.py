"""`RagStoreVectorStore`: a LlamaIndex vector store whose nodes live in a ragstore collection.

LlamaIndex embeds; ragstore keeps the nodes (text, metadata, vector) in its system of record and answers
dense, lexical and hybrid queries with its metadata filters. How a node is stored: nodes.py; how a
LlamaIndex filter becomes ragstore's: filters.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from ragstore.errors import NotFound, OperationFailed
from ragstore.integrations.backend import RagStoreBackend as Backend
from ragstore.integrations.backend import open_store
from ragstore.integrations.llama_index.filters import combine, ragstore_filter
from ragstore.integrations.llama_index.nodes import REF_DOC_KEY, last_per_id, node_document, stored_node
from ragstore.schemas import DocumentInfo

if TYPE_CHECKING:
    from ragstore.service import RagStore

__all__ = ["RagStoreVectorStore"]

_SEARCH_MODES = {
    VectorStoreQueryMode.DEFAULT: "dense",
    VectorStoreQueryMode.TEXT_SEARCH: "lexical",
    VectorStoreQueryMode.HYBRID: "hybrid",
}
# How many documents one `find` call reads, and how many node ids one call names.
PAGE = 500


class RagStoreVectorStore(BasePydanticVectorStore):
    """Nodes in the ragstore collection `collection_name`, over one of: an open `store` (the caller's), a
    `data_dir` (opened here and closed by `close()`), or a `client` (`ragstore.client.RagStoreClient`).

    The collection is created on the first `add`, with the nodes' embedding dimension, under the model name
    `embedding_model_name`. ragstore keys every stored vector by (model name, text), across collections, so
    the name must identify the embedding model (and how LlamaIndex feeds it text, which by default includes
    the node's metadata). The default, `llamaindex:<collection_name>`, gives each collection a vector space of
    its own, which is always safe; name the model yourself (never as ragstore's own model) to share stored
    vectors between collections embedded by it. A name already used with another dimension is refused.

    Queries: `VectorStoreQueryMode.DEFAULT` is ragstore's dense search by the query embedding,
    `TEXT_SEARCH` its lexical search by the query text, `HYBRID` both fused with `hybrid_fusion` ("rrf" by
    default: reciprocal rank fusion, weighted `alpha` for the dense side and `1 - alpha` for the lexical).
    """

    stores_text: bool = True
    flat_metadata: bool = False
    collection_name: str
    embedding_model_name: str = ""
    metric: str = "cosine"
    hybrid_fusion: str = "rrf"

    _backend: Backend = PrivateAttr()
    _owned: Any = PrivateAttr(default=None)
    _dimension: int | None = PrivateAttr(default=None)

    def __init__(
        self,
        collection_name: str,
        *,
        store: RagStore | None = None,
        data_dir: str | Path | None = None,
        client: Backend | None = None,
        embedding_model_name: str | None = None,
        metric: str = "cosine",
        hybrid_fusion: str = "rrf",
    ) -> None:
        if sum(x is not None for x in (store, data_dir, client)) != 1:
            raise ValueError("give exactly one of store (an open RagStore), data_dir or client")
        super().__init__(
            stores_text=True,
            collection_name=collection_name,
            embedding_model_name=embedding_model_name or f"llamaindex:{collection_name}",
            metric=metric,
            hybrid_fusion=hybrid_fusion,
        )
        if data_dir is not None:
            self._owned = open_store(data_dir)
            self._backend = self._owned
        else:
            backend: Backend | None = store if store is not None else client
            assert backend is not None
            self._backend = backend

    @classmethod
    def class_name(cls) -> str:
        return "RagStoreVectorStore"

    @property
    def client(self) -> Backend:
        """The ragstore this store writes to: the RagStore or the RagStoreClient."""
        return self._backend

    def close(self) -> None:
        """Close the store opened from `data_dir` (a store or client given by the caller stays open)."""
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> RagStoreVectorStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------------------------------------
    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Store the nodes (embedded by LlamaIndex); a node id already stored is replaced. Two nodes with the
        same text stay two nodes. Returns the node ids, in the order given."""
        if not nodes:
            return []
        unique = last_per_id(nodes)
        documents = [node_document(n) for n in unique]
        dimensions = {len(n.embedding or ()) for n in unique}
        if len(dimensions) != 1:
            raise ValueError(f"the nodes' embeddings have different dimensions: {sorted(dimensions)}")
        self._ensure_collection(dimensions.pop())
        outcomes = self._backend.documents.add(self.collection_name, documents, keep_duplicates=True)
        failed = [o for o in outcomes if o.status == "failed"]
        if failed:
            raise OperationFailed(f"ragstore could not store node {failed[0].source_uri!r}: {failed[0].error}")
        return [n.node_id for n in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document `ref_doc_id`."""
        self._delete(filter={REF_DOC_KEY: {"$eq": ref_doc_id}})

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        """Delete the nodes with these ids that match `filters` (either may be left out, not both: `clear()`
        deletes every node)."""
        where = ragstore_filter(filters)
        if node_ids is None and where is None:
            raise ValueError("give node_ids or filters (clear() deletes every node)")
        if node_ids is None:
            self._delete(filter=where)
            return
        for part in _parts(node_ids):
            self._delete(sources=part, filter=where)

    def clear(self) -> None:
        """Delete every node; the collection stays, with its settings."""
        self._delete(everything=True)

    # -- reads -----------------------------------------------------------------------------------------------
    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """The stored nodes with these ids (all when None) that match `filters`, with their embeddings."""
        where = ragstore_filter(filters)
        documents: list[DocumentInfo] = []
        try:
            if node_ids is None:
                documents.extend(self._find(None, where))
            else:
                for part in _parts(node_ids):
                    documents.extend(self._find(part, where))
        except NotFound:  # no collection yet: nothing was added
            return []
        chunks = [(d, c) for d in documents for c in d.chunks or []]
        vectors: dict[int, Sequence[float]] = {}
        for start in range(0, len(chunks), PAGE):
            chunk_ids = [c.id for _, c in chunks[start : start + PAGE]]
            vectors.update(
                (v.chunk_id, v.vector) for v in self._backend.documents.vectors(self.collection_name, chunk_ids)
            )
        return [
            stored_node(d.source_uri, c.text, d.metadata, ordinal=c.ordinal, embedding=vectors.get(c.id))
            for d, c in chunks
        ]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The best `similarity_top_k` nodes (`hybrid_top_k` in hybrid mode, when given) for the query."""
        mode = _SEARCH_MODES.get(query.mode)
        if mode is None:
            supported = ", ".join(m.name for m in _SEARCH_MODES)
            raise ValueError(f"query mode {query.mode.name} is not supported by ragstore (supported: {supported})")
        # An empty list restricts nothing: `VectorStoreIndex.as_retriever()` passes `node_ids=[]` (the ids its
        # own index struct holds, none when the store keeps the nodes), and most LlamaIndex stores read it so.
        where = combine(
            ragstore_filter(query.filters),
            {REF_DOC_KEY: {"$in": list(query.doc_ids)}} if query.doc_ids else None,
            {"source_uri": {"$in": list(query.node_ids)}} if query.node_ids else None,
        )
        text, vector = query.query_str, query.query_embedding
        if mode == "dense" and vector is None:
            raise ValueError("a DEFAULT query needs query_embedding")
        if mode == "lexical":
            vector = None
            if not text:
                raise ValueError("a TEXT_SEARCH query needs query_str")
        if mode == "hybrid" and vector is None and not text:
            raise ValueError("a HYBRID query needs query_str and query_embedding")
        k = query.hybrid_top_k if mode == "hybrid" and query.hybrid_top_k else query.similarity_top_k
        weights: dict[str, Any] = {}
        if mode == "hybrid":
            weights["fusion"] = self.hybrid_fusion
            if query.alpha is not None:
                weights.update(dense_weight=query.alpha, lexical_weight=1 - query.alpha)
        try:
            response = self._backend.search(
                self.collection_name,
                text if mode != "dense" else None,
                vector=vector,
                k=k,
                filter=where,
                mode=mode,
                **weights,
            )
        except NotFound:  # no collection yet: nothing was added
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        nodes = [stored_node(h.source_uri, h.text, h.metadata, ordinal=h.ordinal) for h in response.hits]
        return VectorStoreQueryResult(
            nodes=nodes, similarities=[h.score for h in response.hits], ids=[n.node_id for n in nodes]
        )

    # -- async: the same calls on a worker thread, so an event loop never waits on the database -----------
    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)

    # -- helpers ---------------------------------------------------------------------------------------------
    def _ensure_collection(self, dimension: int) -> None:
        """Create the collection (or find it as it is): a Conflict names a setting that differs."""
        if self._dimension == dimension:
            return
        self._backend.collections.create(
            self.collection_name,
            embedding_model=self.embedding_model_name,
            dimension=dimension,
            metric=self.metric,
            exist_ok=True,
        )
        self._dimension = dimension

    def _delete(
        self, *, sources: Sequence[str] | None = None, filter: dict[str, Any] | None = None, everything: bool = False
    ) -> None:
        with contextlib.suppress(NotFound):  # no collection yet: nothing to delete
            self._backend.documents.delete_many(
                self.collection_name, sources=sources, filter=filter, everything=everything
            )

    def _find(self, sources: Sequence[str] | None, where: dict[str, Any] | None) -> Iterator[DocumentInfo]:
        offset = 0
        while True:
            page = self._backend.documents.find(
                self.collection_name, sources=sources, filter=where, limit=PAGE, offset=offset, with_chunks=True
            )
            yield from page
            if len(page) < PAGE:
                return
            offset += len(page)


def _parts(ids: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), PAGE):
        yield list(ids[start : start + PAGE])
