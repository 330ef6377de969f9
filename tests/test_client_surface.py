"""The client has the facade's interface: the same sub-facades, method names and parameters (names, kinds,
defaults) as `RagStore`'s, sync and async alike, so code (the CLI, the adapters) can take either. The few
differences are listed here with their reason."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from ragstore.backup.service import BackupService
from ragstore.chat.service import ChatService
from ragstore.client import AsyncRagStoreClient, RagStoreClient
from ragstore.consistency.service import ConsistencyService
from ragstore.documents.service import CollectionService, DocumentService
from ragstore.search.service import SearchService

FACADES: dict[str, type[Any]] = {
    "collections": CollectionService,
    "documents": DocumentService,
    "search": SearchService,
    "chat": ChatService,
    "backups": BackupService,
    "consistency": ConsistencyService,
}
# Methods the client adds: iterators over pages, and the API's name for starting a backup.
CLIENT_ONLY = {"iter", "pages", "start"}
# Parameters the client does not take, and why.
NOT_OVER_HTTP = {
    ("documents", "add", "on_chunks"),  # a progress callback cannot cross HTTP
    ("documents", "ingest_paths", "*"),  # LocalOnly: reads the store's own files
    ("documents", "sync_paths", "*"),
    ("chat", "relex", "*"),  # LocalOnly: an operator's task with no route
}


def _public(kind: type[Any]) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(kind)
        if not name.startswith("_") and (inspect.isfunction(member) or name == "__call__")
    }


def _parameters(function: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize("client_class", [RagStoreClient, AsyncRagStoreClient])
@pytest.mark.parametrize("facade", sorted(FACADES))
def test_each_client_method_has_the_facades_signature(client_class: type[Any], facade: str) -> None:
    client = client_class("http://127.0.0.1:1")
    mine = type(getattr(client, facade))
    theirs = FACADES[facade]
    methods = _public(mine)
    for name, method in methods.items():
        if name in CLIENT_ONLY:
            continue
        assert hasattr(theirs, name), f"{facade}.{name} is not a facade method"
        if (facade, name, "*") in NOT_OVER_HTTP:
            continue
        wanted = [p for p in _parameters(getattr(theirs, name)) if (facade, name, p[0]) not in NOT_OVER_HTTP]
        assert _parameters(method) == wanted, f"{facade}.{name}"
        assert inspect.iscoroutinefunction(method) == (client_class is AsyncRagStoreClient), f"{facade}.{name}"
    # Every facade method the API serves is on the client (the rest are LocalOnly there, never missing).
    served = {"list", "get", "create", "delete", "add", "add_text", "find", "delete_many", "vectors", "run"}
    assert {m for m in _public(theirs) if m in served} <= set(methods)
