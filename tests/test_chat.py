"""Conversations, messages, feedback and context through `store.chat`, on SQLite and PostgreSQL.

Callers are set with `acting_as`, as the API and the CLI set them: a user's session, a user's key, a key of no
user, and an admin. The chunks a message cites are real chunks of real documents, deleted and replaced by the
document service, so a citation's state is checked against what the store really does.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from ragstore.config import Settings
from ragstore.db.chat_models import Conversation, MessageLexeme
from ragstore.db.security_models import AuditLog
from ragstore.errors import Conflict, Forbidden, InvalidInput, NotFound
from ragstore.schemas.chat import MessageReference
from ragstore.security.context import acting_as
from ragstore.security.principal import Principal, PrincipalKind, Role
from ragstore.service import RagStore

ADMIN = Principal(PrincipalKind.KEY, "admin", {"*": Role.ADMIN}, key_id=1)
SERVICE_KEY = Principal(PrincipalKind.KEY, "svc", {"*": Role.WRITE}, key_id=77)


def user_principal(user_id: int, email: str = "u@example.org") -> Principal:
    return Principal(PrincipalKind.USER, email, {"*": Role.WRITE}, user_id=user_id)


@pytest.fixture
def people(store: RagStore) -> dict[str, Principal]:
    ada = store.users.create("ada@example.org", "correct horse battery", role="write")
    bob = store.users.create("bob@example.org", "correct horse battery", role="write")
    return {"ada": user_principal(ada.id, ada.email), "bob": user_principal(bob.id, bob.email)}


def chain(store: RagStore, conversation_id: str, texts: list[str]) -> list[int]:
    return [
        store.chat.add(conversation_id, role="user" if i % 2 == 0 else "assistant", content=t).id
        for i, t in enumerate(texts)
    ]


def test_branching_and_the_active_branch(store: RagStore) -> None:
    c = store.chat.create(title="t")
    first, second = chain(store, c.id, ["질문 하나", "answer one"])
    regenerated = store.chat.add(c.id, role="assistant", content="answer two", parent_id=first).id
    shown = store.chat.show(c.id)
    assert [m.id for m in shown.messages] == [first, regenerated]
    assert shown.conversation.active_message_id == regenerated and shown.conversation.message_count == 3
    assert [m.id for m in store.chat.show(c.id, all_branches=True).messages] == [first, second, regenerated]
    switched = store.chat.branch(c.id, second)
    assert switched.active_message_id == second and switched.version == c.version + 1
    assert [m.id for m in store.chat.show(c.id).messages] == [first, second]
    follow = store.chat.add(c.id, role="user", content="and then?")  # the default parent is the active leaf
    assert follow.parent_id == second
    other = store.chat.create()
    foreign = store.chat.add(other.id, role="user", content="elsewhere").id
    with pytest.raises(InvalidInput):
        store.chat.add(c.id, role="user", content="x", parent_id=foreign)
    with pytest.raises(InvalidInput):
        store.chat.branch(c.id, foreign)
    with pytest.raises(InvalidInput):
        store.chat.add(c.id, role="robot", content="x")
    with store.db.read() as s:  # each message's terms were written with it, for message search
        assert (
            s.scalar(select(func.count()).select_from(MessageLexeme).where(MessageLexeme.conversation_id == c.id)) == 4
        )


def test_context_fits_the_budget_newest_first_and_counts_tokens(store: RagStore) -> None:
    c = store.chat.create()
    ids = chain(store, c.id, [f"message number {i} with a few more words" for i in range(20)])
    each = store.chat.show(c.id).messages[0].token_count
    assert each > 0
    got = store.chat.context(c.id, budget_tokens=each * 5 + 1)
    assert [m.id for m in got.messages] == ids[-5:] and got.tokens == each * 5 and got.truncated
    assert got.tokens <= got.budget_tokens
    everything = store.chat.context(c.id, budget_tokens=100_000)
    assert [m.id for m in everything.messages] == ids and not everything.truncated
    store.chat.update(c.id, version=store.chat.get(c.id).version, summary="요약 summary")
    summarised = store.chat.context(c.id, budget_tokens=each * 5 + 1)
    assert summarised.summary == "요약 summary" and summarised.tokens <= each * 5 + 1
    assert len(summarised.messages) == 4  # the summary took one message's room
    with pytest.raises(InvalidInput):
        store.chat.context(c.id, budget_tokens=0)
    empty = store.chat.create()
    assert store.chat.context(empty.id, 100).messages == []


def test_cited_chunks_resolve_as_current_changed_or_deleted(store: RagStore) -> None:
    store.collections.create("kb")
    kept = store.documents.add_text("kb", "Kimchi is fermented cabbage. " * 5, source_uri="file:kimchi.txt")
    gone = store.documents.add_text("kb", "Bibimbap is mixed rice with vegetables. " * 5, source_uri="file:bibim.txt")
    swapped = store.documents.add_text("kb", "Tteokbokki are rice cakes in sauce. " * 5, source_uri="file:tteok.txt")

    def cite(document_id: int | None) -> MessageReference:
        assert document_id is not None
        chunk = store.documents.get("kb", document_id, with_chunks=True).chunks[0]  # type: ignore[index]
        return MessageReference(chunk_id=chunk.id, document_id=document_id, content_hash=chunk.content_hash, score=0.5)

    refs = [cite(kept.document_id), cite(gone.document_id), cite(swapped.document_id)]
    tampered = refs[0].model_copy(update={"content_hash": "0" * 64})
    c = store.chat.create(collections=["kb"])
    store.chat.add(c.id, role="user", content="what is kimchi?")
    answer = store.chat.add(c.id, role="assistant", content="It is cabbage.", references=[*refs, tampered])
    states = lambda: [r.state for r in store.chat.context(c.id, 1000).references]  # noqa: E731
    assert states() == ["current", "current", "current", "changed"]
    assert all(r.message_id == answer.id for r in store.chat.context(c.id, 1000).references)
    store.documents.delete("kb", gone.document_id)  # type: ignore[arg-type]
    store.documents.add_text("kb", "Tteokbokki, now with cheese. " * 5, source_uri="file:tteok.txt")
    assert states() == ["current", "deleted", "changed", "changed"]  # seen at once, though the context is cached
    assert states() == ["current", "deleted", "changed", "changed"]
    with pytest.raises(NotFound):
        store.chat.create(collections=["nope"])


def test_soft_delete_hides_the_conversation_from_every_read_at_once(store: RagStore) -> None:
    c = store.chat.create(title="secret")
    m = store.chat.add(c.id, role="user", content="hello").id
    store.chat.context(c.id, 100)
    store.chat.delete(c.id)
    for read in (
        lambda: store.chat.get(c.id),
        lambda: store.chat.show(c.id),
        lambda: store.chat.context(c.id, 100),
        lambda: store.chat.add(c.id, role="user", content="again"),
        lambda: store.chat.update(c.id, version=5, title="x"),
        lambda: store.chat.branch(c.id, m),
        lambda: store.chat.feedback(m, rating=1),
        lambda: store.chat.delete(c.id),
    ):
        with pytest.raises(NotFound):
            read()
    assert store.chat.list().conversations == []
    with store.db.read() as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "conversation.delete")).one()
        assert (
            entry.target == f"conversation:{c.id}"
            and "secret" not in str(entry.details)
            and "hello" not in str(entry.details)
        )


def test_a_user_sees_only_their_own_and_an_admin_sees_all(store: RagStore, people: dict[str, Principal]) -> None:
    with acting_as(people["ada"]):
        mine = store.chat.create(title="ada's")
        m = store.chat.add(mine.id, role="user", content="private").id
        assert mine.owner_user_id == people["ada"].user_id
        with pytest.raises(Forbidden):
            store.chat.create(user="bob@example.org")
    with acting_as(people["bob"]):
        for read in (
            lambda: store.chat.get(mine.id),
            lambda: store.chat.show(mine.id),
            lambda: store.chat.context(mine.id, 100),
            lambda: store.chat.add(mine.id, role="user", content="hi"),
            lambda: store.chat.update(mine.id, version=1, title="x"),
            lambda: store.chat.branch(mine.id, m),
            lambda: store.chat.feedback(m, rating=1),
            lambda: store.chat.delete(mine.id),
        ):
            with pytest.raises(NotFound):
                read()
        assert store.chat.list().conversations == []
    with acting_as(SERVICE_KEY):  # a key of no user sees what it created, for whichever end user
        served = store.chat.create(end_user_id="anon-1")
        assert [c.id for c in store.chat.list().conversations] == [served.id]
        with pytest.raises(NotFound):
            store.chat.get(mine.id)
    with acting_as(ADMIN):
        assert {c.id for c in store.chat.list().conversations} == {mine.id, served.id}
        assert store.chat.get(mine.id).title == "ada's"
        made = store.chat.create(user="bob@example.org")
        assert made.owner_user_id == people["bob"].user_id
        assert [c.id for c in store.chat.list(user="bob@example.org").conversations] == [made.id]
        assert [c.id for c in store.chat.list(end_user_id="anon-1").conversations] == [served.id]
        with pytest.raises(NotFound):
            store.chat.create(user="nobody@example.org")
    for bad in ("not-a-ulid", "", "0" * 27, "01M91VWE033D8Q6JQ2EVQ3W61U"):
        with pytest.raises(NotFound):
            store.chat.get(bad)


def test_stale_updates_conflict_and_listing_pages(store: RagStore) -> None:
    store.collections.create("kb")
    c = store.chat.create(title="v1", collections=["kb"])
    changed = store.chat.update(c.id, version=c.version, title="v2", metadata={"k": 1})
    assert (changed.title, changed.version, changed.metadata) == ("v2", c.version + 1, {"k": 1})
    with pytest.raises(Conflict):
        store.chat.update(c.id, version=c.version, title="stale")
    assert store.chat.get(c.id).title == "v2"
    with pytest.raises(InvalidInput):
        store.chat.update(c.id, version=0)
    made = [store.chat.create(title=f"n{i}").id for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = store.chat.list(limit=2, cursor=cursor)
        seen += [x.id for x in page.conversations]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [*reversed(made), c.id]  # newest activity first
    assert [x.id for x in store.chat.list(collection="kb").conversations] == [c.id]
    assert store.chat.list(is_active=False).conversations == []
    with pytest.raises(InvalidInput):
        store.chat.list(cursor="garbage!")


def test_feedback_is_one_per_message_and_source_and_validated(store: RagStore) -> None:
    c = store.chat.create()
    m = store.chat.add(c.id, role="assistant", content="answer").id
    first = store.chat.feedback(m, rating=1)
    again = store.chat.feedback(m, rating=-1, comment="wrong")
    assert again.id == first.id and again.rating == -1 and again.comment == "wrong"
    reviewer = store.chat.feedback(m, rating=4, scale="stars", source="reviewer")
    assert reviewer.id != first.id
    for bad in (
        {"rating": 3},
        {"rating": 0, "scale": "stars"},
        {"rating": 6, "scale": "stars"},
        {"rating": 1, "scale": "x"},
    ):
        with pytest.raises(InvalidInput):
            store.chat.feedback(m, **bad)
    with pytest.raises(NotFound):
        store.chat.feedback(10**9, rating=1)


def test_message_count_is_exact_under_concurrent_appends(store: RagStore) -> None:
    c = store.chat.create()
    errors: list[BaseException] = []
    writers, each = 50, 2

    def write(n: int) -> None:
        try:
            for i in range(each):
                store.chat.add(c.id, role="user", content=f"writer {n} message {i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.db.read() as s:
        assert s.scalar(select(Conversation.message_count).where(Conversation.id == c.id)) == writers * each
    shown = store.chat.show(c.id)
    assert len(shown.messages) == writers * each  # one chain: every writer appended to the leaf the last one left


@pytest.fixture
def second_store(store: RagStore, make_settings: Callable[..., Settings], embedder: Any) -> Iterator[RagStore]:
    """Another store object on the same database (another process, as far as caches go)."""
    with RagStore.open(make_settings(), embedder=embedder, recover=False) as other:
        yield other


def test_the_context_cache_is_hit_and_a_new_message_elsewhere_invalidates_it(
    store: RagStore, second_store: RagStore
) -> None:
    c = store.chat.create()
    chain(store, c.id, ["one", "two"])
    assert not store.chat.context(c.id, 100).cached
    hit = store.chat.context(c.id, 100)
    assert hit.cached and [m.content for m in hit.messages] == ["one", "two"]
    second_store.chat.add(c.id, role="user", content="three")  # another store object: nothing is published
    fresh = store.chat.context(c.id, 100)
    assert not fresh.cached and [m.content for m in fresh.messages] == ["one", "two", "three"]
    assert store.chat.context(c.id, 100).cached
    second_store.chat.update(c.id, version=store.chat.get(c.id).version, summary="sum")
    assert store.chat.context(c.id, 100).summary == "sum"
    second_store.chat.delete(c.id)
    with pytest.raises(NotFound):
        store.chat.context(c.id, 100)


def test_the_context_cache_is_shared_through_redis_and_invalidated_from_another_process(
    make_settings: Callable[..., Settings], embedder: Any
) -> None:
    url = os.environ.get("RAGSTORE_TEST_REDIS_URL")
    if not url:
        pytest.skip("RAGSTORE_TEST_REDIS_URL is not set")
    import redis

    namespace = f"test-chat-{uuid.uuid4().hex[:8]}"
    settings = make_settings(redis_url=url, cache_namespace=namespace)
    client = redis.Redis.from_url(url)
    try:
        with (
            RagStore.open(settings, embedder=embedder, recover=False) as one,
            RagStore.open(settings, embedder=embedder, recover=False) as two,
        ):
            c = one.chat.create()
            chain(one, c.id, ["one", "two"])
            assert not one.chat.context(c.id, 100).cached
            assert any(":session:chat:" in k.decode() for k in client.scan_iter(f"{namespace}:*"))
            shared = two.chat.context(c.id, 100)  # never computed by `two`: found in Redis
            assert shared.cached and two.components.cache.sessions.stats.hits_shared == 1
            two.chat.add(c.id, role="user", content="three")
            fresh = one.chat.context(c.id, 100)
            assert not fresh.cached and [m.content for m in fresh.messages] == ["one", "two", "three"]
    finally:
        for key in client.scan_iter(f"{namespace}:*"):
            client.delete(key)
        client.close()


def test_a_citation_of_a_collection_the_caller_may_not_read_shows_as_deleted(store: RagStore) -> None:
    store.collections.create("kb")
    store.collections.create("other")
    added = store.documents.add_text("kb", "Kimchi is fermented cabbage. " * 5, source_uri="file:kimchi.txt")
    chunk = store.documents.get("kb", int(added.document_id or 0), with_chunks=True).chunks[0]  # type: ignore[index]
    cited = {"chunk_id": chunk.id, "document_id": added.document_id, "content_hash": chunk.content_hash}
    both = Principal(PrincipalKind.KEY, "k", {"kb": Role.WRITE, "other": Role.WRITE}, key_id=5)
    narrowed = Principal(PrincipalKind.KEY, "k", {"other": Role.WRITE}, key_id=5)  # the same key, kb revoked
    with acting_as(both):
        c = store.chat.create(collections=["kb"])
        store.chat.add(c.id, role="assistant", content="cabbage", references=[cited])
        assert [r.state for r in store.chat.context(c.id, 100).references] == ["current"]
    with acting_as(narrowed):
        assert [r.state for r in store.chat.context(c.id, 100).references] == ["deleted"]
        with pytest.raises(NotFound):
            store.chat.create(collections=["kb"])
