"""The LlamaIndex example, run: a VectorStoreIndex over the sample corpus, kept in ragstore, and a retriever.

Nothing is downloaded: the embedding model is ragstore's own local one, wrapped as a LlamaIndex
`BaseEmbedding`, and there is no LLM (a retriever needs none). The collection's model name is not the
local model's own: LlamaIndex embeds a node's metadata with its text, so its vectors are not the ones
ragstore would store for that text under the model's name (backend.py and store.py say why that matters).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters, VectorStoreQueryMode

from ragstore.embeddings.local import LocalEmbedder
from ragstore.integrations.llama_index import RagStoreEmbedding, RagStoreVectorStore

CORPUS = Path(__file__).resolve().parent.parent / "samples" / "corpus" / "en"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, local_embedder: LocalEmbedder) -> Iterator[VectorStoreIndex]:
    """The English sample corpus, one Document per file, split and embedded by LlamaIndex, stored in ragstore."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("DATABASE_URL", raising=False)
        env.setenv("RAGSTORE_COMPANION_MODEL", "none")  # a store of one language needs no cross-lingual model
        Settings.llm = None  # MockLLM: nothing to download, and a retriever asks no LLM
        vector_store = RagStoreVectorStore(
            "samples",
            data_dir=tmp_path_factory.mktemp("llama-example") / "data",
            embedding_model_name=f"llamaindex:{local_embedder.model}",
        )
    documents = [
        Document(text=path.read_text(encoding="utf-8"), id_=path.name, metadata={"file_name": path.name})
        for path in sorted(CORPUS.glob("*.md"))
    ]
    with vector_store:
        yield VectorStoreIndex.from_documents(
            documents,
            storage_context=StorageContext.from_defaults(vector_store=vector_store),
            embed_model=RagStoreEmbedding(embedder=local_embedder, embed_batch_size=32),
            transformations=[SentenceSplitter(chunk_size=256, chunk_overlap=20)],
        )


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How long should I proof the dough before baking?", "sourdough-bread.md"),
        ("What water temperature is best for pour-over?", "coffee-brewing.md"),
        ("How do I restore a server from yesterday's backup?", "server-backup.md"),
    ],
)
def test_the_retriever_finds_the_sample_document(index: VectorStoreIndex, question: str, expected: str) -> None:
    nodes = index.as_retriever(similarity_top_k=3).retrieve(question)
    assert nodes[0].node.metadata["file_name"] == expected
    assert nodes[0].node.ref_doc_id == expected and nodes[0].score is not None


def test_hybrid_retrieval_and_a_metadata_filter(index: VectorStoreIndex) -> None:
    retriever = index.as_retriever(similarity_top_k=2, vector_store_query_mode=VectorStoreQueryMode.HYBRID, alpha=0.5)
    assert retriever.retrieve("sourdough starter feeding")[0].node.metadata["file_name"] == "sourdough-bread.md"
    only = MetadataFilters(filters=[MetadataFilter(key="file_name", value="git-branching.md")])
    found = index.as_retriever(similarity_top_k=5, filters=only).retrieve("baking bread")
    assert found and {n.node.metadata["file_name"] for n in found} == {"git-branching.md"}


def test_deleting_a_document_through_the_index(index: VectorStoreIndex) -> None:
    question = "How many days do I have to ask for a refund?"
    assert index.as_retriever(similarity_top_k=1).retrieve(question)[0].node.ref_doc_id == "refund-policy.md"
    index.delete_ref_doc("refund-policy.md")
    after = index.as_retriever(similarity_top_k=10).retrieve(question)
    assert after and all(n.node.ref_doc_id != "refund-policy.md" for n in after)
