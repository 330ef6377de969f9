"""A Python client for ragstore's HTTP API with the facade's interface (issue 21).

    from ragstore.client import RagStoreClient

    with RagStoreClient("http://localhost:8000", api_key=KEY) as store:
        store.collections.create("kb", exist_ok=True)
        store.documents.add_text("kb", "Seoul has a subway.", title="transit")
        hits = store.search("kb", "subway", k=5).hits

The same code runs on a local `RagStore`. `client.py` says what the two share; `retry.py` when a request is
sent again; `errors.py` how an answer becomes a domain error.
"""

from __future__ import annotations

from ragstore.client.client import AsyncRagStoreClient, RagStoreClient
from ragstore.client.errors import LocalOnly
from ragstore.client.retry import RetryPolicy

__all__ = ["AsyncRagStoreClient", "LocalOnly", "RagStoreClient", "RetryPolicy"]
