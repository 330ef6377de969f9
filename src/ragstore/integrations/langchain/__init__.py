"""LangChain (`pip install 'ragstore[langchain]'`): `RagStoreVectorStore`, a LangChain `VectorStore`.

    from ragstore.integrations.langchain import RagStoreEmbeddings, RagStoreVectorStore

    vectorstore = RagStoreVectorStore("kb", RagStoreEmbeddings(), data_dir="data")  # or any LangChain embedding
    retriever = vectorstore.as_retriever(search_kwargs={"k": 5, "mode": "hybrid"})

Imported only by this path, never by `import ragstore`; without the extra, the ImportError names it.
"""

from __future__ import annotations

from ragstore.integrations._extras import require

require("langchain_core", "langchain")

from ragstore.integrations.langchain.embeddings import RagStoreEmbeddings  # noqa: E402
from ragstore.integrations.langchain.vectorstore import RagStoreVectorStore  # noqa: E402

__all__ = ["RagStoreEmbeddings", "RagStoreVectorStore"]
