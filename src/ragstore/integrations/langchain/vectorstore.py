"""`RagStoreVectorStore`: a LangChain `VectorStore` over a ragstore collection.

The vectors are LangChain's (its `Embeddings` embeds both documents and queries); ragstore stores them,
indexes them and searches them, and keeps the documents, their metadata and the lexical index beside them,
which is what makes ragstore's hybrid search (`mode="hybrid"`) available to a LangChain retriever.

Scores are ragstore's: in dense mode (the default here) the cosine similarity of the query and the chunk,
higher is better, so the relevance of a hit is that cosine clamped to [0, 1]. Hybrid and lexical scores
are fused or BM25 scores with no fixed scale: a relevance threshold is refused for them rather than
applied to a number that does not mean relevance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from ragstore.errors import NotFound
from ragstore.integrations.backend import RagStoreBackend, open_backend
from ragstore.integrations.langchain.convert import (
    assign_ids,
    document_input,
    embedding_model_name,
    from_hit,
    from_info,
)
from ragstore.schemas import MAX_SEARCH_DEPTH, SearchHit

__all__ = ["SEARCH_OPTIONS", "RagStoreVectorStore"]

# ragstore search options a caller (or a retriever's `search_kwargs`) may pass through to `store.search`.
SEARCH_OPTIONS = frozenset({"mode", "min_score", "fusion", "rrf_k", "dense_weight", "lexical_weight", "min_coverage"})
_BY_IDS_BATCH = 100  # sources looked up per `documents.find` call


class RagStoreVectorStore(VectorStore):
    """A ragstore collection as a LangChain vector store.

    Give exactly one of `store` (an open `RagStore`, stays yours to close), `data_dir` (a store opened here
    and closed by `close()`), or `client` (a `ragstore.client.RagStoreClient` for a remote server). The
    collection is created on the first add, with the embedding's dimension and its name as the model.
    """

    def __init__(
        self,
        collection_name: str,
        embedding: Embeddings,
        *,
        store: RagStoreBackend | None = None,
        data_dir: str | Path | None = None,
        client: RagStoreBackend | None = None,
    ) -> None:
        self.collection_name = collection_name
        self._embedding = embedding
        self.embedding_model = embedding_model_name(embedding)
        self._backend, self._owned = open_backend(store, data_dir, client)
        self._known = False  # the collection exists and is this embedding's (checked once, then trusted)

    # -- lifecycle -------------------------------------------------------------------------------------------
    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @property
    def backend(self) -> RagStoreBackend:
        """The store or client underneath, for what LangChain has no word for (collections, ingest of files)."""
        return self._backend

    def close(self) -> None:
        """Close the store this adapter opened on `data_dir`; a store or client passed in is left open."""
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------------------------------------
    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Embed and store the documents; an id that exists is replaced (upsert). Returns the ids, in order.

        Two documents of equal text are both kept (`keep_duplicates`): in LangChain they are two ids.
        """
        ids = assign_ids(documents, kwargs.pop("ids", None))
        if kwargs:
            raise TypeError(f"unexpected arguments: {', '.join(sorted(kwargs))}")
        if not documents:
            return []
        blank = [source for source, d in zip(ids, documents, strict=True) if not d.page_content.strip()]
        if blank:  # refused before anything is embedded
            raise ValueError(f"ragstore stores no document without text: {', '.join(blank)}")
        vectors = self._embedding.embed_documents([d.page_content for d in documents])
        last = {source: i for i, source in enumerate(ids)}  # one id twice in a batch: the last one wins
        inputs = [document_input(documents[i], source, vectors[i]) for source, i in last.items()]
        self._prepare_write(len(vectors[0]))
        try:
            outcomes = self._backend.documents.add(self.collection_name, inputs, keep_duplicates=True)
        except NotFound:  # dropped since it was checked: create it again, once
            self._known = False
            self._prepare_write(len(vectors[0]))
            outcomes = self._backend.documents.add(self.collection_name, inputs, keep_duplicates=True)
        failed = [f"{o.source_uri}: {o.error or o.status}" for o in outcomes if o.status in ("failed", "duplicate")]
        if failed:
            raise ValueError(f"{len(failed)} of {len(inputs)} documents were not stored: {'; '.join(failed)}")
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete these ids (missing ones are no error); with no ids at all, every document of the collection."""
        if kwargs:
            raise TypeError(f"unexpected arguments: {', '.join(sorted(kwargs))}")
        if ids is not None and not ids:
            return True
        try:
            if ids is None:
                self._backend.documents.delete_many(self.collection_name, everything=True)
            else:
                self._backend.documents.delete_many(self.collection_name, sources=[str(i) for i in ids])
        except NotFound:
            self._known = False  # no collection: nothing to delete
        return True

    # -- reads -----------------------------------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents of these ids, in the order asked; missing ids are left out, repeated ones given once."""
        wanted = list(dict.fromkeys(str(i) for i in ids))
        found: dict[str, Document] = {}
        try:
            for start in range(0, len(wanted), _BY_IDS_BATCH):
                batch = wanted[start : start + _BY_IDS_BATCH]
                infos = self._backend.documents.find(
                    self.collection_name, sources=batch, limit=len(batch), with_chunks=True
                )
                found.update((info.source_uri, from_info(info)) for info in infos)
        except NotFound:
            return []
        return [found[i] for i in wanted if i in found]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents with ragstore's score (dense: cosine similarity, higher is better)."""
        vector = self._embedding.embed_query(query)
        return [(from_hit(h), h.score) for h in self._hits(query, vector, k, filter, kwargs)]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return [from_hit(h) for h in self._hits(None, embedding, k, filter, kwargs)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """A dense score is a cosine similarity: relevance is that, clamped to LangChain's [0, 1]."""
        return _cosine_relevance

    def _similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        if (kwargs.get("mode") or "dense") != "dense":
            raise ValueError(
                f"relevance scores need mode 'dense' (a cosine); mode {kwargs['mode']!r} scores on no fixed scale: "
                "use search_type 'similarity' with min_score instead"
            )
        return super()._similarity_search_with_relevance_scores(query, k, **kwargs)

    def max_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        vector = self._embedding.embed_query(query)
        return self._mmr(query, vector, k, fetch_k, lambda_mult, kwargs)

    def max_marginal_relevance_search_by_vector(
        self, embedding: list[float], k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        return self._mmr(None, embedding, k, fetch_k, lambda_mult, kwargs)

    def _mmr(
        self,
        query: str | None,
        vector: Sequence[float],
        k: int,
        fetch_k: int,
        lambda_mult: float,
        options: dict[str, Any],
    ) -> list[Document]:
        """Fetch `fetch_k` candidates, then choose `k` of them by MMR over their stored vectors (ragstore's,
        as indexed: nothing is embedded again)."""
        filter_spec = options.pop("filter", None)
        hits = self._hits(query, vector, max(fetch_k, k), filter_spec, options)
        if not hits:
            return []
        stored = self._backend.documents.vectors(self.collection_name, [h.chunk_id for h in hits])
        by_chunk = {v.chunk_id: [float(x) for x in v.vector] for v in stored}
        hits = [h for h in hits if h.chunk_id in by_chunk]  # deleted since the search: left out
        chosen = maximal_marginal_relevance(
            np.asarray(vector, dtype=np.float32),
            [by_chunk[h.chunk_id] for h in hits],
            lambda_mult=lambda_mult,
            k=min(k, len(hits)),
        )
        return [from_hit(hits[i]) for i in chosen]

    def _hits(
        self,
        query: str | None,
        vector: Sequence[float],
        k: int,
        filter_spec: dict[str, Any] | None,
        options: dict[str, Any],
    ) -> list[SearchHit]:
        """The best `k` hits from ragstore: dense unless `mode` says otherwise; hybrid and lexical use the
        query text (ragstore cannot embed it for this collection, so the vector always goes too)."""
        unknown = set(options) - SEARCH_OPTIONS
        if unknown:
            known = ", ".join(sorted(SEARCH_OPTIONS))
            raise TypeError(f"unexpected arguments: {', '.join(sorted(unknown))} (ragstore takes filter, {known})")
        if k <= 0:
            return []
        mode = options.pop("mode", None) or "dense"
        text = query if query is not None and query.strip() else None
        if not self._exists():
            return []
        try:
            response = self._backend.search(
                self.collection_name,
                text,
                vector=vector,  # as the embedding gave it: the facade and the client take any sequence
                k=min(k, MAX_SEARCH_DEPTH),
                filter=filter_spec,
                mode=mode,
                **options,
            )
        except NotFound:
            self._known = False
            return []
        return list(response.hits)

    # -- the collection --------------------------------------------------------------------------------------
    def _exists(self) -> bool:
        """Whether the collection exists (a search of one not yet created finds nothing); one of another
        embedding is refused, since its vectors and this embedding's queries would not be comparable."""
        if self._known:
            return True
        try:
            info = self._backend.collections.get(self.collection_name)
        except NotFound:
            return False
        if info.embedding_model != self.embedding_model:
            raise ValueError(
                f"collection {self.collection_name!r} holds vectors of {info.embedding_model!r}, "
                f"not of this embedding ({self.embedding_model!r})"
            )
        self._known = True
        return True

    def _prepare_write(self, dimension: int) -> None:
        """Create the collection for this embedding, or check the one there is (ragstore's Conflict names
        the setting that differs)."""
        if self._known:
            return
        self._backend.collections.create(
            self.collection_name,
            embedding_model=self.embedding_model,
            dimension=dimension,
            metric="cosine",
            exist_ok=True,
        )
        self._known = True

    # -- constructors ----------------------------------------------------------------------------------------
    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        collection_name: str = "langchain",
        store: RagStoreBackend | None = None,
        data_dir: str | Path | None = None,
        client: RagStoreBackend | None = None,
        **kwargs: Any,
    ) -> Self:
        """A store over `collection_name` (created if need be) holding these texts."""
        vectorstore = cls(collection_name, embedding, store=store, data_dir=data_dir, client=client)
        try:
            vectorstore.add_texts(list(texts), metadatas, ids=ids, **kwargs)
        except BaseException:
            vectorstore.close()
            raise
        return vectorstore


def _cosine_relevance(score: float) -> float:
    return min(1.0, max(0.0, score))
