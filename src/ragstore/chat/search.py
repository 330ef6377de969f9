"""Full-text search over messages (issue 18): Korean-aware, filtered by owner, conversation, role and time,
with highlights. FTS5 on SQLite, the GIN-indexed tsvector on PostgreSQL, over `message_lexemes`.

SKELETON: the foundation commit fixes the signature; the implementation lands with the message-search work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ragstore.db.engine import Database
from ragstore.schemas.chat import MessageRole, MessageSearchResult
from ragstore.security.principal import Principal

__all__ = ["MAX_MESSAGE_HITS", "MessageSearch"]

MAX_MESSAGE_HITS = 100


@dataclass(slots=True)
class MessageSearch:
    db: Database
    analyze: Callable[[str], Sequence[str]]  # the store's configured analyzer (LexicalIndexer.target().terms)

    def search(
        self,
        principal: Principal,
        query: str,
        *,
        k: int = 10,
        user: int | None = None,
        conversation_id: str | None = None,
        role: MessageRole | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> MessageSearchResult:
        raise NotImplementedError("message search lands with issue 18's search work")
