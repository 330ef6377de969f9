"""ragstore.client against a real server: one scenario run through the local facade and through the client
must give the same results (collections, documents, every search mode, conversations, backups, the
consistency checker, and the errors), plus the iterators, the async client and the error mapping.

Two stores of their own (two folders; on PostgreSQL two schemas) start empty, so the same calls in the same
order make the same rows with the same ids; only times and generated ids are named alike (client_helpers).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from client_helpers import Served, normal, second_settings, served_store
from ragstore.client import AsyncRagStoreClient, LocalOnly, RagStoreClient
from ragstore.config import Settings
from ragstore.errors import Conflict, InvalidInput, NotFound, RagstoreError, Unauthorized, Unavailable
from ragstore.schemas import SearchRequest
from ragstore.service import RagStore
from servers import free_port

DOCS: list[dict[str, Any]] = [
    {"text": "The Seoul subway fare is 1,400 won for an adult with a card.", "title": "fares", "source_uri": "fares",
     "metadata": {"lang": "en", "year": 2024}},
    {"text": "김치는 배추를 소금에 절여 양념과 함께 발효시킨 음식이다.", "title": "김치", "source_uri": "kimchi",
     "metadata": {"lang": "ko", "year": 2023}},
    {"text": "Buses and the subway share one transit card; transfers within 30 minutes are free.",
     "title": "transfers", "source_uri": "transfers", "metadata": {"lang": "en", "year": 2025}},
    {"text": "서울 지하철은 새벽 5시 30분부터 자정 넘어까지 운행한다.", "title": "운행 시간", "source_uri": "hours",
     "metadata": {"lang": "ko", "year": 2024}},
]  # fmt: skip
VECTORS = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.7, 0.7, 0.0, 0.0]]


@pytest.fixture
def served(
    make_settings: Callable[..., Settings],
    request: pytest.FixtureRequest,
    database_url: str | None,
    tmp_path: Path,
    embedder: Any,
) -> Iterator[Served]:
    with served_store(second_settings(make_settings, request, database_url, tmp_path / "remote"), embedder) as s:
        yield s


@pytest.fixture
def client(served: Served) -> Iterator[RagStoreClient]:
    with RagStoreClient(served.url, served.key) as made:
        yield made


def scenario(face: Any) -> list[Any]:
    """Every operation the client offers, in one order; each result or domain error is recorded."""
    results: list[Any] = []

    def step(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            result = call(*args, **kwargs)
        except RagstoreError as exc:
            result = exc
        results.append(result)
        return result

    c, d, s, chat = face.collections, face.documents, face.search, face.chat
    step(c.create, "kb", description="transit and food")
    step(c.create, "kb", description="transit and food", exist_ok=True)
    step(c.create, "kb")
    step(c.create, "byo", embedding_model="my-model", dimension=4, metric="cosine")
    step(d.add, "kb", DOCS)
    step(d.add, "kb", [DOCS[0]])  # unchanged
    step(d.add, "kb", [{**DOCS[1], "source_uri": "kimchi-copy"}])  # duplicate of kimchi
    step(d.add_text, "kb", "Taxis in Seoul start at 4,800 won.", title="taxi", metadata={"lang": "en"})
    chunks = [{"text": f"vector chunk {i}", "vector": v} for i, v in enumerate(VECTORS)]
    byo = step(d.add, "byo", [{"text": "", "chunks": chunks, "source_uri": "byo-1"}])
    step(d.add, "kb", [{"text": "", "title": "nothing"}])  # invalid: no text
    kept = step(d.add, "kb", [{**DOCS[1], "source_uri": "kimchi-kept"}], keep_duplicates=True)
    assert kept[0].status == "added"  # not `duplicate`: the flag reached the server
    step(d.find, "kb", sources=["fares", "hours", "nowhere"])
    step(d.find, "kb", filter={"lang": "ko"}, with_chunks=True)
    step(d.find, "kb", limit=2, offset=1)
    step(d.find, "missing")
    byo_chunks = [c.id for c in face.documents.get("byo", byo[0].document_id, with_chunks=True).chunks]
    step(d.vectors, "byo", [byo_chunks[2], byo_chunks[0], 999_999])
    step(d.vectors, "kb", [1, 2])
    assert step(d.delete_many, "kb", sources=["kimchi-kept"]).deleted == 1
    step(d.delete_many, "kb", filter={"lang": "xx"})
    step(d.delete_many, "kb")  # invalid: names nothing
    step(c.list)
    step(c.get, "kb")
    step(c.get, "missing")
    step(d.list, "kb", limit=2, offset=1)
    step(d.get, "kb", 1, with_chunks=True)
    step(d.get, "kb", 999)
    step(d.list, "missing")
    for mode in ("dense", "lexical", "hybrid"):
        step(s, "kb", "subway fare", k=3, mode=mode, explain=True)
        step(s, "kb", "지하철 운행", k=2, mode=mode, filter={"lang": "ko"})
    step(s, "kb", "transit card", k=2, filter={"year": {"$gte": 2024}}, min_score=-10.0)
    first = step(s, "kb", "subway", k=2)
    step(s, "kb", "subway", k=2, cursor=first.next_cursor)
    step(s, "kb", "subway", k=1, offset=2, fusion="rrf", rrf_k=30)
    step(s.run, "kb", SearchRequest(query="fermented cabbage", k=2, mode="lexical"))
    step(s, "byo", vector=[0.9, 0.1, 0.0, 0.0], k=2)
    step(s, "byo", vector=[1.0, 0.0], k=2)  # wrong dimension
    step(s, "kb", "anything", k=0)  # invalid
    step(s, "missing", "anything")
    step(d.delete, "kb", 3)
    step(d.delete, "kb", 3)
    step(d.list, "kb")

    chunk = face.documents.get("kb", 1, with_chunks=True).chunks[0]
    conv = step(chat.create, title="trip", collections=["kb"], metadata={"topic": "seoul"})
    ask = step(chat.add, conv.id, role="user", content="How much is the subway fare in Seoul?")
    cited = {"chunk_id": chunk.id, "document_id": 1, "content_hash": chunk.content_hash, "score": 0.9}
    answer = step(chat.add, conv.id, role="assistant", content="About 1,400 won.", references=[cited])
    step(chat.add, conv.id, role="assistant", content="Another answer on a branch.", parent_id=ask.id)
    step(chat.branch, conv.id, answer.id)
    current = step(chat.get, conv.id)
    step(chat.update, conv.id, version=current.version, title="trip to Seoul", summary="fares")
    step(chat.update, conv.id, version=current.version, title="stale")  # Conflict
    step(chat.show, conv.id)
    step(chat.show, conv.id, all_branches=True, limit=2)
    step(chat.context, conv.id, 50)
    step(chat.feedback, answer.id, rating=1, comment="right")
    step(chat.feedback, answer.id, rating=4, scale="stars")
    step(chat.search, "subway fare", k=5)
    step(chat.search, "subway", role="assistant")
    other = step(chat.create, title="second")
    step(chat.list, limit=1)
    step(chat.delete, other.id)
    step(chat.get, other.id)
    step(chat.list)

    step(face.consistency.check, trigger="api")
    step(face.consistency.check, "kb", repair=True, trigger="api")
    step(face.consistency.check, "missing", trigger="api")
    step(face.consistency.history)
    step(face.consistency.report)
    step(face.consistency.report, 1)
    step(face.consistency.report, 999)

    step(face.backups.create, "snapshot", note="client test", trigger="api")
    step(face.backups.list)
    step(face.backups.verify, trigger="api")
    step(face.backups.verify, "no-such-backup", trigger="api")
    step(face.backups.history)
    status = step(face.backups.status)
    status.repository = "<repository>"  # the server never names its paths (backup.public)
    return results


def _comparable(results: list[Any]) -> list[Any]:
    """A validation error's wording may differ (the server's model words it, the facade its own check): its
    category and code must not. The server names its backup repository by a label, never its path."""
    for i, value in enumerate(results):
        if isinstance(value, InvalidInput):
            results[i] = (type(value).__name__, value.code)
        elif isinstance(value, RagstoreError):
            message = re.sub(r"/\S*/backups\b", "<backup repository>", value.message)
            results[i] = (type(value).__name__, value.code, message)
    return normal(results)


def test_the_same_scenario_gives_the_same_results_through_the_facade_and_the_client(
    store: RagStore, client: RagStoreClient
) -> None:
    local = _comparable(scenario(store))
    remote = _comparable(scenario(client))
    assert len(local) == len(remote)
    for i, (mine, theirs) in enumerate(zip(local, remote, strict=True)):
        assert mine == theirs, f"step {i} differs"
    # The scenario met each kind of error on both faces.
    kinds = {r[0] for r in remote if isinstance(r, list) and r and isinstance(r[0], str) and r[0][0].isupper()}
    assert kinds == {"NotFound", "Conflict", "InvalidInput"}


def test_errors_are_the_domain_errors_with_the_servers_message(client: RagStoreClient, served: Served) -> None:
    with pytest.raises(NotFound) as missing:
        client.collections.get("nowhere")
    assert missing.value.message == "collection 'nowhere' does not exist"
    assert missing.value.details == {"collection": "nowhere"} and missing.value.exit_code == 2
    client.collections.create("kb")
    with pytest.raises(Conflict):
        client.collections.create("kb")
    with pytest.raises(InvalidInput) as invalid:
        client.search("kb", "q", k=0)
    assert "k" in invalid.value.message and invalid.value.code == "invalid_input"
    with pytest.raises(LocalOnly):
        client.documents.ingest_paths("kb", ["/etc"])
    with pytest.raises(Unauthorized), RagStoreClient(served.url, "rs_not-a-key", retries=0) as stranger:
        stranger.collections.list()
    port = free_port()  # nothing listens there
    with pytest.raises(Unavailable) as down, RagStoreClient(f"http://127.0.0.1:{port}", retries=0) as nowhere:
        nowhere.collections.list()
    assert f"http://127.0.0.1:{port}" in down.value.message


def test_iterators_follow_the_pages(client: RagStoreClient) -> None:
    client.collections.create("kb")
    docs = [{"text": f"document number {i} about subway fares", "source_uri": f"d{i}"} for i in range(7)]
    client.documents.add("kb", docs)
    assert [d.id for d in client.documents.iter("kb", page_size=3)] == [
        d.id for d in client.documents.list("kb", limit=100)
    ]
    pages = list(client.search.pages("kb", "subway fares", k=2, mode="lexical"))
    whole = client.search("kb", "subway fares", k=8, mode="lexical")
    assert len(pages) == 4 and pages[-1].next_cursor is None
    assert [h.chunk_id for p in pages for h in p.hits] == [h.chunk_id for h in whole.hits]
    made = [client.chat.create(title=f"c{i}").id for i in range(5)]
    assert sorted(c.id for c in client.chat.iter(page_size=2)) == sorted(made)


def test_the_async_client_gives_what_the_sync_client_gives(client: RagStoreClient, served: Served) -> None:
    client.collections.create("kb")
    client.documents.add("kb", DOCS)

    async def remote() -> list[Any]:
        async with AsyncRagStoreClient(served.url, served.key) as aclient:
            results: list[Any] = [
                await aclient.collections.list(),
                await aclient.documents.get("kb", 2, with_chunks=True),
                await aclient.search("kb", "subway", k=2, mode="hybrid"),
            ]
            results.append([d async for d in aclient.documents.iter("kb", page_size=3)])
            results.append([p async for p in aclient.search.pages("kb", "subway", k=2, mode="dense")])
            conv = await aclient.chat.create(title="async")
            await aclient.chat.add(conv.id, role="user", content="hello subway")
            results.append(await aclient.chat.show(conv.id))
            results.append([c async for c in aclient.chat.iter(page_size=1)])
            results.append(await aclient.documents.find("kb", sources=["kimchi", "fares"], with_chunks=True))
            results.append(await aclient.documents.vectors("kb", [2, 1]))
            with pytest.raises(NotFound):
                await aclient.documents.get("kb", 999)
            return results

    found = asyncio.run(remote())
    conv_id = found[5].conversation.id
    expected = [
        client.collections.list(),
        client.documents.get("kb", 2, with_chunks=True),
        client.search("kb", "subway", k=2, mode="hybrid"),
        list(client.documents.iter("kb", page_size=3)),
        list(client.search.pages("kb", "subway", k=2, mode="dense")),
        client.chat.show(conv_id),
        list(client.chat.iter(page_size=1)),
        client.documents.find("kb", sources=["kimchi", "fares"], with_chunks=True),
        client.documents.vectors("kb", [2, 1]),
    ]
    # The sync client asks each search a second time: the server answers it from its result cache.
    assert _uncached(normal(found)) == _uncached(normal(expected))


def _uncached(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _uncached(v) for k, v in value.items() if k != "cached"}
    if isinstance(value, list):
        return [_uncached(v) for v in value]
    return value
