"""Message search on SQLite and PostgreSQL: Korean with particles and two-syllable words, English, each
filter, highlights, and the scope (another user's messages and soft-deleted conversations never show)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from ragstore.cli import app as cli_app
from ragstore.config import Settings
from ragstore.errors import InvalidInput, NotFound
from ragstore.security.context import acting_as
from ragstore.security.principal import Principal, PrincipalKind, Role
from ragstore.service import RagStore


def _user(store: RagStore, email: str) -> Principal:
    made = store.users.create(email, "correct horse battery", role="write")
    return Principal(PrincipalKind.USER, made.email, {"*": Role.WRITE}, user_id=made.id)


@pytest.fixture
def chats(store: RagStore) -> dict[str, object]:
    ada, bob = _user(store, "ada@example.org"), _user(store, "bob@example.org")
    with acting_as(ada):
        lease = store.chat.create(title="전세")
        store.chat.add(lease.id, role="user", content="전세계약을 갱신하려면 무엇이 필요한가요?")
        answer = store.chat.add(lease.id, role="assistant", content="전세계약 갱신에는 임대인의 동의가 필요합니다.")
        english = store.chat.create(title="en")
        store.chat.add(english.id, role="user", content="How do I renew the lease <contract> & keep my deposit?")
        hidden = store.chat.create(title="gone")
        store.chat.add(hidden.id, role="user", content="전세계약 비밀 메모")
        store.chat.delete(hidden.id)
    with acting_as(bob):
        other = store.chat.create(title="bob")
        store.chat.add(other.id, role="user", content="밥의 전세계약 이야기")
    return {
        "ada": ada,
        "bob": bob,
        "lease": lease.id,
        "english": english.id,
        "hidden": hidden.id,
        "other": other.id,
        "answer": answer.id,
    }


def test_korean_particles_and_two_syllable_words(store: RagStore, chats: dict[str, object]) -> None:
    with acting_as(chats["ada"]):  # type: ignore[arg-type]
        found = store.chat.search("전세계약이")
        assert {h.conversation_id for h in found.hits} == {chats["lease"]}
        assert len(found.hits) == 2
        assert any("<mark>전세계약을</mark>" in h.highlight for h in found.hits)
        two = store.chat.search("갱신")
        assert {h.message_id for h in two.hits} >= {chats["answer"]}
        assert all("<mark>" in h.highlight for h in two.hits)


def test_english_and_a_highlight_that_is_safe_to_render(store: RagStore, chats: dict[str, object]) -> None:
    with acting_as(chats["ada"]):  # type: ignore[arg-type]
        found = store.chat.search("renewing leases deposit")
    assert [h.conversation_id for h in found.hits] == [chats["english"]]
    shown = found.hits[0].highlight
    assert "&lt;contract&gt; &amp;" in shown and "<contract>" not in shown and "<mark>deposit</mark>" in shown


def test_scope_other_users_and_soft_deleted_never_show(store: RagStore, chats: dict[str, object]) -> None:
    with acting_as(chats["bob"]):  # type: ignore[arg-type]
        assert {h.conversation_id for h in store.chat.search("전세계약").hits} == {chats["other"]}
        ada_id = chats["ada"].user_id  # type: ignore[attr-defined]
        assert store.chat.search("전세계약", user=ada_id).hits == []  # bob's scope holds none of ada's
    everything = store.chat.search("전세계약", k=100)  # the operator sees all but the soft-deleted one
    assert {h.conversation_id for h in everything.hits} == {chats["lease"], chats["other"]}
    assert chats["hidden"] not in {h.conversation_id for h in everything.hits}


def test_filters(store: RagStore, chats: dict[str, object]) -> None:
    ada_id = chats["ada"].user_id  # type: ignore[attr-defined]
    assert {h.conversation_id for h in store.chat.search("전세계약", user=ada_id).hits} == {chats["lease"]}
    assert {h.conversation_id for h in store.chat.search("전세계약", user="bob@example.org").hits} == {chats["other"]}
    only = store.chat.search("전세계약", conversation_id=str(chats["other"]))
    assert [h.conversation_id for h in only.hits] == [chats["other"]]
    assistant = store.chat.search("전세계약", role="assistant")
    assert [h.message_id for h in assistant.hits] == [chats["answer"]]
    now = datetime.now(UTC)
    assert store.chat.search("전세계약", since=now + timedelta(hours=1)).hits == []
    assert len(store.chat.search("전세계약", until=now + timedelta(hours=1), since=now - timedelta(hours=1)).hits) == 3
    assert store.chat.search("전세계약", until=(now - timedelta(hours=1)).replace(tzinfo=None)).hits == []
    with pytest.raises(InvalidInput):
        store.chat.search("  ?! ")
    with pytest.raises(InvalidInput):
        store.chat.search("전세", k=0)
    with pytest.raises(NotFound):
        store.chat.search("전세", user="nobody@example.org")


def test_http_and_cli(
    store: RagStore,
    chats: dict[str, object],
    settings: Settings,
    database_url: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastapi.testclient import TestClient

    from ragstore.api.app import create_app

    with TestClient(create_app(store=store)) as client:
        answer = client.get("/v1/messages/search", params={"q": "전세계약", "role": "assistant"})
        assert answer.status_code == 200 and [h["message_id"] for h in answer.json()["hits"]] == [chats["answer"]]
        assert client.get("/v1/messages/search", params={"q": "전세", "k": 0}).status_code == 422
        assert client.get("/v1/messages/search", params={"q": "전세", "role": "robot"}).status_code == 422
        assert client.get("/v1/messages/search", params={"q": "?!"}).status_code == 422
    store.close()
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(settings.data_dir))
    if database_url is not None:
        monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    done = runner.invoke(cli_app, ["chat", "search", "전세계약", "--role", "assistant", "--json"])
    assert done.exit_code == 0, done.output
    assert [h["message_id"] for h in json.loads(done.output)["hits"]] == [chats["answer"]]
    text = runner.invoke(cli_app, ["chat", "search", "deposit"])
    assert text.exit_code == 0 and "deposit" in text.output
    bad = runner.invoke(cli_app, ["chat", "search", "전세", "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since" in bad.output
