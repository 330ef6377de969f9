"""LlamaIndex's vector store over ragstore (`pip install 'ragstore[llamaindex]'`).

    from ragstore.integrations.llama_index import RagStoreVectorStore
    vector_store = RagStoreVectorStore("kb", data_dir="./data")
    embed_model = RagStoreEmbedding()  # ragstore's local model, or any LlamaIndex embedding
    context = StorageContext.from_defaults(vector_store=vector_store)
    index = VectorStoreIndex.from_documents(docs, storage_context=context, embed_model=embed_model)

llama_index is imported through `require` first, so that without the extra the ImportError names it.
"""

from __future__ import annotations

from ragstore.integrations._extras import require

require("llama_index.core", "llamaindex")

from ragstore.integrations.llama_index.embedding import RagStoreEmbedding  # noqa: E402
from ragstore.integrations.llama_index.filters import UnsupportedFilter  # noqa: E402
from ragstore.integrations.llama_index.store import RagStoreVectorStore  # noqa: E402

__all__ = ["RagStoreEmbedding", "RagStoreVectorStore", "UnsupportedFilter"]
