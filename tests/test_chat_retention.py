"""Purge and erasure on SQLite and PostgreSQL: they remove everything they name and nothing else.

Rows are made through `store.chat` (as the faces make them); ages are moved by writing `updated_at` in SQL,
the one column the purge reads a conversation's idleness from. The full-text rows are checked through the
raw FTS5 table and the tsvector, so a message that lived on only in the search index would be caught.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from ragstore.cli import app as cli_app
from ragstore.config import Settings
from ragstore.db.chat_models import Conversation, Message, MessageFeedback, MessageLexeme
from ragstore.db.security_models import ApiKey, ApiUsageLog, AuditLog, User, UserSession
from ragstore.errors import Forbidden, NotFound
from ragstore.runtime.scheduler import run_chat_purge
from ragstore.security.context import acting_as
from ragstore.security.principal import Principal, PrincipalKind, Role
from ragstore.service import RagStore

WORD = "퍼지대상낱말"  # a word only the purged or erased messages hold


def _fts_hits(store: RagStore, word: str) -> int:
    with store.db.read() as s:
        if store.db.is_sqlite:
            return int(
                s.scalar(
                    text("SELECT count(*) FROM message_lexemes_fts WHERE message_lexemes_fts MATCH :w"), {"w": word}
                )
                or 0
            )
        return int(
            s.scalar(text("SELECT count(*) FROM message_lexemes WHERE tsv @@ to_tsquery('simple', :w)"), {"w": word})
            or 0
        )


def _terms(store: RagStore, content: str) -> str:
    return store.components.lexical_indexer.target().terms(content)[0]


def _count(store: RagStore, model: type) -> int:
    with store.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _age(store: RagStore, conversation_id: str, days: int) -> None:
    when = datetime.now(UTC) - timedelta(days=days)
    store.db.write(
        lambda s: s.execute(update(Conversation).where(Conversation.id == conversation_id).values(updated_at=when))
    )


def _conversation(store: RagStore, content: str, **fields: object) -> tuple[str, int]:
    c = store.chat.create(title="t", **fields)
    first = store.chat.add(c.id, role="user", content=content)
    answer = store.chat.add(c.id, role="assistant", content="답변입니다")
    store.chat.feedback(answer.id, rating=1)
    return c.id, first.id


def test_purge_removes_deleted_expired_and_idle_conversations_and_nothing_else(store: RagStore) -> None:
    deleted, _ = _conversation(store, f"{WORD} 삭제된 대화")
    _expired, _ = _conversation(store, f"{WORD} 만료된 대화", expires_at=datetime.now(UTC) - timedelta(minutes=1))
    idle, _ = _conversation(store, f"{WORD} 오래된 대화")
    kept, kept_message = _conversation(store, "살아 있는 대화")
    future, _ = _conversation(store, "곧 만료될 대화", expires_at=datetime.now(UTC) + timedelta(days=1))
    store.chat.delete(deleted)
    _age(store, idle, 100)
    word = _terms(store, WORD)
    assert _fts_hits(store, word) == 3

    dry = store.chat.purge(timedelta(days=90), dry_run=True)
    assert (dry.conversations, dry.messages, dry.dry_run) == (3, 6, True)
    assert _count(store, Conversation) == 5  # a dry run changes nothing

    without_age = store.chat.purge()  # soft-deleted and expired only: the idle one stays
    assert (without_age.conversations, without_age.messages) == (2, 4)
    assert store.chat.get(idle).id == idle
    report = store.chat.purge(timedelta(days=90))
    assert (report.conversations, report.messages, report.dry_run) == (1, 2, False)

    with store.db.read() as s:
        assert set(s.scalars(select(Conversation.id))) == {kept, future}
        assert s.scalar(select(func.count()).select_from(Message)) == 4
        assert s.scalar(select(func.count()).select_from(MessageLexeme)) == 4
        assert s.scalar(select(func.count()).select_from(MessageFeedback)) == 2
        purges = list(s.scalars(select(AuditLog).where(AuditLog.action == "chat.purge")))
    assert _fts_hits(store, word) == 0
    assert sum(p.details["conversations"] for p in purges) == 3
    assert all(WORD not in json.dumps(p.details, ensure_ascii=False) for p in purges)
    assert store.chat.show(kept).messages[0].id == kept_message
    assert store.audit.verify().ok


def test_only_an_admin_purges_or_erases(store: RagStore) -> None:
    writer = Principal(PrincipalKind.KEY, "w", {"*": Role.WRITE}, key_id=5)
    with acting_as(writer):
        with pytest.raises(Forbidden):
            store.chat.purge()
        with pytest.raises(Forbidden):
            store.chat.erase_user(1)


def test_the_scheduled_purge_follows_the_retention_setting(make_settings: object, embedder: object) -> None:
    settings: Settings = make_settings(chat_retention_days=30)  # type: ignore[operator]
    with RagStore.open(settings, embedder=embedder) as store:  # type: ignore[arg-type]
        old, _ = _conversation(store, "한 달 넘게 쉰 대화")
        recent, _ = _conversation(store, "어제 대화")
        _age(store, old, 31)
        _age(store, recent, 1)
        report = run_chat_purge(store)
        assert report is not None and report.conversations == 1
        with store.db.read() as s:
            assert list(s.scalars(select(Conversation.id))) == [recent]


def _usage_row(store: RagStore, user_id: int | None, key_id: int | None) -> None:
    store.db.write(
        lambda s: s.add(
            ApiUsageLog(
                api_key_id=key_id,
                user_id=user_id,
                method="GET",
                route="/v1/conversations",
                status=200,
                latency_ms=1.0,
                client_address="203.0.113.7",
            )
        )
    )


def test_erase_removes_everything_of_one_user_and_nothing_of_another(store: RagStore) -> None:
    ada = store.users.create("ada@example.org", "correct horse battery", role="write")
    bob = store.users.create("bob@example.org", "correct horse battery", role="write")
    ada_key = store.keys.create("ada's key", "write", owner_id=ada.id)
    store.users.login("ada@example.org", "correct horse battery")
    store.users.login("bob@example.org", "correct horse battery")
    ada_p = Principal(PrincipalKind.USER, ada.email, {"*": Role.WRITE}, user_id=ada.id)
    bob_p = Principal(PrincipalKind.USER, bob.email, {"*": Role.WRITE}, user_id=bob.id)
    with acting_as(ada_p):
        _ada_conv, _ = _conversation(store, f"{WORD} 에이다의 비밀 이야기")
    with acting_as(bob_p):
        bob_conv, bob_first = _conversation(store, "밥의 이야기")
    # ada reviewed one of bob's answers: her rating goes with her, bob's conversation stays.
    store.db.write(
        lambda s: s.add(
            MessageFeedback(
                message_id=bob_first,
                rating=4,
                scale="stars",
                source="reviewer",
                comment=f"{WORD} ada's review",
                created_by=f"user:{ada.email}",
            )
        )
    )
    _usage_row(store, ada.id, ada_key.id)
    _usage_row(store, bob.id, None)

    report = store.chat.erase_user("ada@example.org")
    assert (report.user_id, report.conversations, report.messages, report.feedback) == (ada.id, 1, 2, 2)
    assert report.sessions == 1 and report.usage_rows_scrubbed == 1
    assert report.keys == 1

    with store.db.read() as s:
        assert s.get(User, ada.id) is None and s.get(User, bob.id) is not None
        assert list(s.scalars(select(Conversation.id))) == [bob_conv]
        assert s.scalar(select(func.count()).select_from(UserSession).where(UserSession.user_id == ada.id)) == 0
        assert s.scalar(select(func.count()).select_from(UserSession).where(UserSession.user_id == bob.id)) == 1
        assert s.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.owner_id == ada.id)) == 0
        feedback = list(s.scalars(select(MessageFeedback)))
        usage = list(s.scalars(select(ApiUsageLog).order_by(ApiUsageLog.id)))
        erase = s.scalars(select(AuditLog).where(AuditLog.action == "user.erase")).one()
    assert [f.created_by for f in feedback] == [f"user:{bob.email}"]  # bob's own rating of his answer stays
    assert usage[0].user_id is None and usage[0].client_address == "" and usage[0].api_key_id is None
    assert usage[1].user_id == bob.id and usage[1].client_address == "203.0.113.7"
    assert usage[0].route == "/v1/conversations"  # the counts stay for the operator's accounting
    recorded = json.dumps(erase.details, ensure_ascii=False) + erase.target
    assert WORD not in recorded and "ada@example.org" not in recorded and erase.target == f"user:{ada.id}"
    assert _fts_hits(store, _terms(store, WORD)) == 0
    assert store.audit.verify().ok
    with pytest.raises(NotFound):
        store.chat.erase_user(ada.id)
    with pytest.raises(NotFound):
        store.users.get(ada.id)


def test_cli_purge_and_erase(
    store: RagStore, settings: Settings, database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(settings.data_dir))
    if database_url is not None:
        monkeypatch.setenv("DATABASE_URL", database_url)
    gone, _ = _conversation(store, "지울 대화")
    store.chat.delete(gone)
    user = store.users.create("eve@example.org", "correct horse battery", role="read")
    store.close()
    runner = CliRunner()
    bad = runner.invoke(cli_app, ["chat", "purge", "--older-than", "soon"])
    assert bad.exit_code == 2 and "--older-than 'soon'" in bad.output
    dry = runner.invoke(cli_app, ["chat", "purge", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output) == {"conversations": 1, "messages": 2, "dry_run": True}
    done = runner.invoke(cli_app, ["chat", "purge", "--older-than", "90d"])
    assert done.exit_code == 0 and "removed 1 conversations (2 messages)" in done.output
    unknown = runner.invoke(cli_app, ["users", "erase", "nobody@example.org", "--yes"])
    assert unknown.exit_code == 2
    erased = runner.invoke(cli_app, ["users", "erase", "eve@example.org", "--yes", "--json"])
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.output)["user_id"] == user.id


def test_http_purge_and_erase_need_an_admin(make_settings: object, embedder: object) -> None:
    from fastapi.testclient import TestClient

    from ragstore.api.app import create_app

    settings: Settings = make_settings(auth="required")  # type: ignore[operator]
    with RagStore.open(settings, embedder=embedder, recover=False) as store:  # type: ignore[arg-type]
        ada = store.users.create("ada@example.org", "correct horse battery", role="write")
        admin = {"Authorization": f"Bearer {store.keys.create('root', 'admin').key}"}
        writer = {"Authorization": f"Bearer {store.keys.create('w', 'write', owner_id=ada.id).key}"}
        gone, _ = _conversation(store, "지울 대화")
        store.chat.delete(gone)
        with TestClient(create_app(store=store)) as client:
            assert client.post("/v1/chat/purge", json={"dry_run": True}, headers=writer).status_code == 403
            assert client.post("/v1/chat/purge", json={}).status_code == 401
            assert client.post("/v1/chat/purge", json={"older_than_days": 0}, headers=admin).status_code == 422
            dry = client.post("/v1/chat/purge", json={"dry_run": True}, headers=admin)
            assert dry.status_code == 200 and dry.json() == {"conversations": 1, "messages": 2, "dry_run": True}
            done = client.post("/v1/chat/purge", json={"older_than_days": 90}, headers=admin)
            assert done.status_code == 200 and done.json()["conversations"] == 1
            assert client.post(f"/v1/users/{ada.id}/erase", json={}, headers=writer).status_code == 403
            erased = client.post(f"/v1/users/{ada.id}/erase", json={}, headers=admin)
            assert erased.status_code == 200 and erased.json()["keys"] == 1
            assert client.get("/v1/conversations", headers=writer).status_code == 401  # her key went with her
            assert client.post(f"/v1/users/{ada.id}/erase", json={}, headers=admin).status_code == 404
