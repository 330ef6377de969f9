"""A message's analysed terms, written in the message's own transaction so search never misses a message.

Messages are analysed with the store's configured analyzer (kiwi or bigrams, as documents are), and the same
analyzer reads a message query. The terms go through `clean_terms`, so FTS5 and PostgreSQL's `simple`
configuration split them exactly as the chunks' terms are split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from ragstore.db.chat_models import MessageLexeme
from ragstore.lexical.base import clean_terms

__all__ = ["message_lexeme_row", "write_message_lexemes"]

MESSAGE_LEXEMES = cast(Table, MessageLexeme.__table__)


def message_lexeme_row(message_id: int, conversation_id: str, terms: Sequence[str]) -> dict[str, Any]:
    cleaned = clean_terms(terms)
    return {
        "message_id": int(message_id),
        "conversation_id": conversation_id,
        "terms": " ".join(cleaned),
        "term_count": len(cleaned),
    }


def write_message_lexemes(s: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Within the caller's transaction (the one that writes the messages)."""
    if rows:
        s.execute(insert(MESSAGE_LEXEMES), list(rows))
