"""Full-text search over messages: Korean-aware, scoped to what the caller may read, with highlights.

Messages are analysed when they are written (`chat/lexemes.py`) with the store's configured analyzer (kiwi's
content morphemes, or Hangul bigrams), and a query is analysed the same way, so "전세계약을" finds a message
that says "전세계약이" and a two-syllable word finds every message that holds it. The full-text structures
are migration 0012's: FTS5 ranked by `bm25()` on SQLite, the GIN-indexed tsvector ranked by `ts_rank` on
PostgreSQL. A query matches any of its terms; the best-ranked come first.

Two plans, chosen by how much of the store the caller may see:
- **scoped** (a user's own conversations, a key's, or any filter on user, conversation, role or time): the
  messages in scope are the candidate set, and only they are matched and ranked. A scope is a few thousand
  messages even in a store of millions, so this costs the scope, not the store: on PostgreSQL the planner
  walks the scope and checks each row's tsvector; on SQLite, where FTS5 cannot restrict its search to a set
  of rowids, the scope's stored terms are ranked with FTS5's own BM25 weights (`chat/scoring.py`), and only
  a scope of more than SCOPE_LIMIT messages goes through FTS5 with the scope as a filter.
- **everything** (an admin without filters): the newest RECENT_WINDOW (1,000) matches are ranked, and the
  best shown that are in conversations a search may show (not soft-deleted). A word in a quarter of a
  million messages would otherwise cost ranking all of them (a third of a second at a million messages):
  an admin looking through everyone's chats gets the most relevant of the recent matches, which is exact
  whenever a query matches fewer messages than the window.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    Float,
    Integer,
    and_,
    bindparam,
    column,
    func,
    literal_column,
    select,
    table,
    text,
)

from ragstore.chat.access import sees_everything, visible_conversation
from ragstore.chat.conversations import resolve_user_id
from ragstore.chat.scoring import SCOPE_LIMIT, ScopedRanker
from ragstore.db.chat_models import Conversation, Message, MessageLexeme
from ragstore.db.engine import Database
from ragstore.errors import InvalidInput
from ragstore.lexical.base import QueryTerm, query_terms
from ragstore.lexical.postgres_fts import tsquery_text
from ragstore.lexical.sqlite_fts import fts_match
from ragstore.schemas.chat import MessageHit, MessageRole, MessageSearchResult
from ragstore.security.principal import Principal
from ragstore.text.analyzers import Analyzer, BigramAnalyzer

__all__ = ["MAX_MESSAGE_HITS", "MAX_MESSAGE_QUERY_CHARS", "MessageSearch", "highlight"]

MAX_MESSAGE_HITS = 100
MAX_MESSAGE_QUERY_CHARS = 1000
MAX_ROUNDS = 3
PASSAGE_CHARS = 200  # the highlight: this much text around the first match
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

FTS = table("message_lexemes_fts", column("rowid", Integer))
# The newest matches first (FTS5 walks its doclists backwards and stops at the LIMIT), scored as they come.
_RECENT = (
    "SELECT rowid, bm25(message_lexemes_fts) AS rank FROM message_lexemes_fts "
    "WHERE message_lexemes_fts MATCH ? ORDER BY rowid DESC LIMIT ?"
)
RECENT_WINDOW = 1000  # an unscoped search ranks the newest this many matches (all of them, when fewer)
_VISIBLE = (
    "SELECT m.id FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id "
    "WHERE m.id IN (SELECT value FROM json_each(?)) AND c.deleted_at IS NULL"
)


@dataclass(slots=True)
class MessageSearch:
    db: Database
    analyzer: Callable[[], Analyzer]  # the store's configured analyzer (LexicalIndexer.target)
    ranker: ScopedRanker = field(init=False)

    def __post_init__(self) -> None:
        self.ranker = ScopedRanker(self.db)

    def search(
        self,
        principal: Principal,
        query: str,
        *,
        k: int = 10,
        user: int | str | None = None,
        conversation_id: str | None = None,
        role: MessageRole | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> MessageSearchResult:
        started = time.perf_counter()
        if not 1 <= k <= MAX_MESSAGE_HITS:
            raise InvalidInput(f"k must be 1 to {MAX_MESSAGE_HITS}")
        if len(query) > MAX_MESSAGE_QUERY_CHARS:
            raise InvalidInput(f"a message query is at most {MAX_MESSAGE_QUERY_CHARS} characters")
        analyzer = self.analyzer()
        terms = query_terms(analyzer.terms(query), prefix_single_syllables=analyzer.name == BigramAnalyzer.name)
        if not terms:
            raise InvalidInput("the query has no word to search for (only spaces, punctuation or stop words)")
        filters = [visible_conversation(principal)]
        if user is not None:
            with self.db.read() as s:
                filters.append(Conversation.owner_user_id == resolve_user_id(s, user))
        if conversation_id is not None:
            filters.append(Message.conversation_id == conversation_id[:26])
        if role is not None:
            filters.append(Message.role == role)
        if since is not None:
            filters.append(Message.created_at >= _utc(since))
        if until is not None:
            filters.append(Message.created_at < _utc(until))
        scoped = len(filters) > 1 or not sees_everything(principal)
        condition = and_(*filters)
        if self.db.is_sqlite:
            ranked = self._sqlite(terms, k, condition if scoped else None)
        else:
            ranked = self._postgres(terms, k, condition, scoped=scoped)
        hits = self._hits(ranked, terms, analyzer)
        return MessageSearchResult(query=query, hits=hits, took_ms=round((time.perf_counter() - started) * 1000, 3))

    # -- SQLite: FTS5 ----------------------------------------------------------------------------------------
    def _sqlite(
        self, terms: Sequence[QueryTerm], k: int, condition: ColumnElement[bool] | None
    ) -> list[tuple[int, float]]:
        if condition is None:
            return self._sqlite_everything(terms, k)
        with self.db.read() as s:
            in_scope = list(
                s.scalars(
                    select(Message.id)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .where(condition)
                    .limit(SCOPE_LIMIT + 1)
                )
            )
        if len(in_scope) <= SCOPE_LIMIT:  # the usual case: rank the scope's own terms (chat/scoring.py)
            return self.ranker.rank(in_scope, terms, k)
        scope = (
            select(Message.id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(condition)
            .scalar_subquery()
        )
        rank: ColumnClause[Any] = literal_column("bm25(message_lexemes_fts)")
        statement = (
            select(FTS.c.rowid, rank.label("rank"))
            .where(text("message_lexemes_fts MATCH :match"), FTS.c.rowid.in_(scope))
            .order_by(rank)
            .limit(k)
        )
        with self.db.read() as s:
            rows = s.execute(statement, {"match": fts_match(terms)}).all()
        return [(int(r[0]), -float(r[1])) for r in rows]  # bm25() is lower-is-better

    def _sqlite_everything(self, terms: Sequence[QueryTerm], k: int) -> list[tuple[int, float]]:
        """The best `k` of the newest RECENT_WINDOW matches in conversations a search may show."""
        match = fts_match(terms)
        window = RECENT_WINDOW
        for _ in range(MAX_ROUNDS):
            recent = self.db.raw_sqlite_rows(_RECENT, (match, window))
            shown = {int(r[0]) for r in self.db.raw_sqlite_rows(_VISIBLE, (json.dumps([r[0] for r in recent]),))}
            kept = sorted(((int(r[0]), -float(r[1])) for r in recent if int(r[0]) in shown), key=_best_first)
            if len(kept) >= k or len(recent) < window:
                return kept[:k]
            window *= 4  # soft-deleted conversations crowd the newest matches: look further back
        return kept[:k]

    # -- PostgreSQL: tsvector and GIN ------------------------------------------------------------------------
    def _postgres(
        self, terms: Sequence[QueryTerm], k: int, condition: ColumnElement[bool], *, scoped: bool
    ) -> list[tuple[int, float]]:
        query = func.to_tsquery("simple", bindparam("q"))
        tsv: ColumnClause[Any] = literal_column("message_lexemes.tsv")
        matching = select(MessageLexeme.message_id, tsv.label("tsv")).where(tsv.op("@@")(query))
        if not scoped:  # the newest matches only, as on SQLite: a common word must not rank the whole store
            matching = matching.order_by(MessageLexeme.message_id.desc()).limit(RECENT_WINDOW)
        found = matching.subquery("found")
        rank = func.ts_rank(found.c.tsv, query, 1, type_=Float)
        statement = (
            select(found.c.message_id, rank.label("rank"))
            .join(Message, Message.id == found.c.message_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(condition)
            .order_by(rank.desc(), found.c.message_id.desc())
            .limit(k)
        )
        with self.db.read() as s:
            rows = s.execute(statement, {"q": tsquery_text(terms)}).all()
        return [(int(r[0]), float(r[1])) for r in rows]

    # -- results ---------------------------------------------------------------------------------------------
    def _hits(
        self, ranked: list[tuple[int, float]], terms: Sequence[QueryTerm], analyzer: Analyzer
    ) -> list[MessageHit]:
        if not ranked:
            return []
        with self.db.read() as s:
            rows = {
                int(r.id): r
                for r in s.execute(
                    select(
                        Message.id, Message.conversation_id, Message.role, Message.content, Message.created_at
                    ).where(Message.id.in_([message_id for message_id, _ in ranked]))
                )
            }
        hits = []
        for message_id, score in ranked:
            row = rows.get(message_id)
            if row is None:  # deleted between the ranking and this read
                continue
            hits.append(
                MessageHit(
                    message_id=message_id,
                    conversation_id=row.conversation_id,
                    role=row.role,
                    score=round(score, 6),
                    highlight=highlight(row.content, terms, analyzer),
                    created_at=row.created_at,
                )
            )
        return hits


def _best_first(hit: tuple[int, float]) -> tuple[float, int]:
    return -hit[1], -hit[0]


def _utc(moment: datetime) -> datetime:
    """A time without a zone is read as UTC (every stored time is), one with a zone converted to it."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def highlight(content: str, terms: Sequence[QueryTerm], analyzer: Analyzer) -> str:
    """A passage of `content` around its first match, HTML-escaped, each matching word in <mark></mark>.

    A word matches when one of its analysed terms is a query term (or starts with a prefix term), so a
    Korean word is marked whatever particle it carries."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(content)]
    exact = {t.text for t in terms if not t.prefix}
    prefixes = tuple(t.text for t in terms if t.prefix)
    analysed = analyzer.terms_batch([content[a:b] for a, b in words]) if words else []
    marked = [
        (a, b)
        for (a, b), word_terms in zip(words, analysed, strict=True)
        if any(term in exact or (prefixes and term.startswith(prefixes)) for term in word_terms)
    ]
    if not marked:
        return html.escape(content[:PASSAGE_CHARS])
    start = max(0, marked[0][0] - PASSAGE_CHARS // 4)
    end = min(len(content), start + PASSAGE_CHARS)
    out: list[str] = ["…" if start > 0 else ""]
    at = start
    for a, b in marked:
        if a < start or b > end:
            continue
        out.append(html.escape(content[at:a]))
        out.append(f"<mark>{html.escape(content[a:b])}</mark>")
        at = b
    out.append(html.escape(content[at:end]))
    out.append("…" if end < len(content) else "")
    return "".join(out)
