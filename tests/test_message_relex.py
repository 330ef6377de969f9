"""Messages' search terms follow a change of analyzer, on SQLite and PostgreSQL (chat/relex.py).

A store opened with bigrams and reopened with kiwi analyses every message again at open, records kiwi, and
finds messages by kiwi's terms; `chat relex` does it on demand (admins and the operator only)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ragstore.chat.relex import MESSAGE_ANALYZER_KEY
from ragstore.cli import app as cli_app
from ragstore.config import Settings
from ragstore.db.chat_models import MessageLexeme
from ragstore.db.state import read_state
from ragstore.errors import Conflict, Forbidden
from ragstore.lexical.base import clean_terms
from ragstore.security.context import acting_as
from ragstore.security.principal import Principal, PrincipalKind, Role
from ragstore.service import RagStore
from ragstore.text.analyzers import KiwiAnalyzer, kiwi_available

pytestmark = pytest.mark.skipif(not kiwi_available(), reason="kiwipiepy (ragstore[korean]) is not installed")

MESSAGES = (
    "전세계약을 갱신하려면 무엇이 필요한가요?",
    "보증금은 계약서에 적힌 날짜에 돌려받습니다.",
    "How do I renew the lease?",
)


def _terms(store: RagStore) -> dict[int, str]:
    with store.db.read() as s:
        return {r.message_id: r.terms for r in s.scalars(select(MessageLexeme))}


def test_a_new_analyzer_reanalyses_every_message_at_open(
    make_settings: Callable[..., Settings], embedder: object
) -> None:
    with RagStore.open(make_settings(lexical_analyzer="bigram"), embedder=embedder) as store:  # type: ignore[arg-type]
        assert read_state(store.db, MESSAGE_ANALYZER_KEY)["analyzer"] == "bigram"  # type: ignore[index]
        chat = store.chat.create(title="전세")
        ids = [store.chat.add(chat.id, role="user", content=text).id for text in MESSAGES]
        bigram_terms = _terms(store)
        assert store.recovery.relexed_messages == 0
    with RagStore.open(make_settings(lexical_analyzer="kiwi"), embedder=embedder) as store:  # type: ignore[arg-type]
        assert store.recovery.relexed_messages == len(MESSAGES)
        state = read_state(store.db, MESSAGE_ANALYZER_KEY)
        assert state is not None and state["analyzer"] == KiwiAnalyzer.name
        kiwi = KiwiAnalyzer()
        now = _terms(store)
        assert now == {i: " ".join(clean_terms(kiwi.terms(text))) for i, text in zip(ids, MESSAGES, strict=True)}
        assert now != bigram_terms
        # kiwi's terms find the message whatever the particle; a message added now is analysed the same way.
        assert store.chat.search("전세계약이").hits[0].message_id == ids[0]
        assert [h.message_id for h in store.chat.search("보증금을").hits] == [ids[1]]
        assert [h.message_id for h in store.chat.search("lease").hits] == [ids[2]]
        added = store.chat.add(chat.id, role="assistant", content="계약서를 확인하세요.")
        assert _terms(store)[added.id] == " ".join(clean_terms(kiwi.terms("계약서를 확인하세요.")))
    with RagStore.open(make_settings(lexical_analyzer="kiwi"), embedder=embedder) as store:  # type: ignore[arg-type]
        assert store.recovery.relexed_messages == 0  # current: nothing to do


def test_chat_relex_on_demand_admin_only_and_from_the_cli(
    make_settings: Callable[..., Settings],
    embedder: object,
    database_url: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(lexical_analyzer="kiwi")
    with RagStore.open(settings, embedder=embedder) as store:  # type: ignore[arg-type]
        chat = store.chat.create(title="t")
        for text in MESSAGES:
            store.chat.add(chat.id, role="user", content=text)
        before = _terms(store)
        report = store.chat.relex()
        assert (report.messages_analysed, report.analyzer.split()[0]) == (len(MESSAGES), KiwiAnalyzer.name)
        assert _terms(store) == before  # the same analyzer gives the same terms
        store.chat.delete(chat.id)
        assert store.chat.relex().messages_analysed == len(MESSAGES)  # hidden ones too, until a purge
        writer = Principal(PrincipalKind.KEY, "w", {"*": Role.WRITE}, key_id=5)
        with acting_as(writer), pytest.raises(Forbidden):
            store.chat.relex()
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RAGSTORE_LEXICAL_ANALYZER", "kiwi")
    if database_url is not None:
        monkeypatch.setenv("DATABASE_URL", database_url)
    done = CliRunner().invoke(cli_app, ["chat", "relex", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["messages_analysed"] == len(MESSAGES)
    text = CliRunner().invoke(cli_app, ["chat", "relex"])
    assert text.exit_code == 0 and f"{len(MESSAGES)} messages analysed with kiwi" in text.output


def test_two_processes_recording_the_analyzer_at_once_both_open(
    store: RagStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two server workers opening a new store both record the analyzer; the loser of the insert race updates."""
    from ragstore.chat import relex
    from ragstore.db.state import write_state

    calls: list[dict[str, str] | None] = []

    def racing(db: object, key: str, value: dict[str, str] | None) -> None:
        calls.append(value)
        if len(calls) == 1:
            write_state(store.db, key, {"analyzer": "other", "version": "0"})  # the other worker got there first
            raise Conflict("duplicate key value violates unique constraint")
        write_state(store.db, key, value)

    monkeypatch.setattr(relex, "write_state", racing)
    store.chat.relexer._record()
    target = store.components.lexical_indexer.target()
    assert read_state(store.db, MESSAGE_ANALYZER_KEY) == {"analyzer": target.name, "version": target.version}
    assert len(calls) == 2


def test_two_passes_at_once_leave_exactly_one_row_per_message(store: RagStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers opening after an analyzer change both run the pass; their swaps take turns."""
    import threading

    from ragstore.chat import relex

    monkeypatch.setattr(relex, "BATCH", 4)  # many small swaps, so the two passes interleave
    chat = store.chat.create(title="t")
    for i in range(24):
        store.chat.add(chat.id, role="user", content=f"{MESSAGES[i % 3]} {i}")
    expected = _terms(store)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            store.chat.relexer.relex()
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert _terms(store) == expected
    with store.db.read() as s:
        assert len(list(s.scalars(select(MessageLexeme.message_id)))) == 24
