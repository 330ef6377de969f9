"""Message terms analysed again when the store's analyzer changes.

A message's terms are written once, with the analyzer configured at the time (`chat/lexemes.py`). A store
whose analyzer changes (kiwi installed later, or `RAGSTORE_LEXICAL_ANALYZER` switched) would otherwise keep
old terms that queries analysed the new way no longer match: "전세계약을" analysed by kiwi never meets the
bigrams of an old message. So, as for the chunks' terms (`lexical/indexer.py`), the analyzer that built the
messages' terms is recorded (`store_state` key `message_analyzer`), a store that opens with another one
analyses every message again, and `ragstore chat relex` does it on demand.

Messages never change once written, so each batch is analysed outside any transaction and swapped in a
transaction of its own (the FTS5 triggers and PostgreSQL's generated `tsvector` follow the rows). The
analyzer is recorded only after the last batch: a crash midway leaves the old record, and the next open
starts again. A message written meanwhile is analysed with the configured analyzer, the one being moved to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragstore.chat.lexemes import message_lexeme_row, write_message_lexemes
from ragstore.db.chat_models import Message, MessageLexeme
from ragstore.db.engine import Database
from ragstore.db.state import read_state, write_state
from ragstore.errors import Conflict
from ragstore.schemas.chat import MessageRelexReport
from ragstore.text.analyzers import Analyzer

__all__ = ["BATCH", "MESSAGE_ANALYZER_KEY", "MessageRelexer", "Progress"]

MESSAGE_ANALYZER_KEY = "message_analyzer"
# The PostgreSQL advisory lock around each batch's swap ("msgrelex" in ASCII); any constant all processes share.
RELEX_LOCK_KEY = int.from_bytes(b"msgrelex", "big") & 0x7FFF_FFFF_FFFF_FFFF
BATCH = 1000

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class MessageRelexer:
    db: Database
    analyzer: Callable[[], Analyzer]  # the store's configured analyzer (LexicalIndexer.target)

    def recorded(self) -> tuple[str, str] | None:
        """(analyzer, version) that built the messages' terms; None before it was first recorded."""
        state = read_state(self.db, MESSAGE_ANALYZER_KEY)
        return (str(state.get("analyzer")), str(state.get("version"))) if state else None

    def is_current(self) -> bool:
        target = self.analyzer()
        return self.recorded() == (target.name, target.version)

    def bring_current(self, *, progress: Progress | None = None) -> int:
        """At open: analyse every message again if another analyzer (or an unrecorded one) built the terms.

        Returns the messages analysed (0 when the terms are current or there are no messages).
        """
        if self.is_current():
            return 0
        with self.db.read() as s:
            if s.scalar(select(Message.id).limit(1)) is None:
                self._record()
                return 0
        return self.relex(progress=progress).messages_analysed

    def relex(self, *, progress: Progress | None = None) -> MessageRelexReport:
        """Analyse every message again with the configured analyzer, even when it is current."""
        target = self.analyzer()
        with self.db.read() as s:
            total = int(s.scalar(select(func.count()).select_from(Message)) or 0)
        done, last = 0, 0
        while True:
            with self.db.read() as s:
                batch = s.execute(
                    select(Message.id, Message.conversation_id, Message.content)
                    .where(Message.id > last)
                    .order_by(Message.id)
                    .limit(BATCH)
                ).all()
            if not batch:
                break
            terms = target.terms_batch([row.content for row in batch])
            rows = [
                message_lexeme_row(row.id, row.conversation_id, row_terms)
                for row, row_terms in zip(batch, terms, strict=True)
            ]
            ids = [row.id for row in batch]

            def swap(s: Session, ids: list[int] = ids, rows: list[dict[str, object]] = rows) -> None:
                if not self.db.is_sqlite:
                    # Two workers opening at once would both run the pass: one swap at a time, so the second
                    # deletes what the first inserted instead of inserting a duplicate beside it.
                    s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RELEX_LOCK_KEY})
                # Only messages still present, held (FOR SHARE) so that a purge cannot remove one before its
                # new terms are inserted.
                present = set(s.scalars(select(Message.id).where(Message.id.in_(ids)).with_for_update(read=True)))
                s.execute(delete(MessageLexeme).where(MessageLexeme.message_id.in_(ids)))
                write_message_lexemes(s, [r for r in rows if r["message_id"] in present])

            self.db.write(swap)
            done += len(batch)
            last = int(batch[-1].id)
            if progress:
                progress(done, max(total, done))
        self._record()
        return MessageRelexReport(messages_analysed=done, analyzer=f"{target.name} {target.version}")

    def _record(self) -> None:
        target = self.analyzer()
        value = {"analyzer": target.name, "version": target.version}
        try:
            write_state(self.db, MESSAGE_ANALYZER_KEY, value)
        except (Conflict, IntegrityError):
            # Another process (a second server worker opening the same new store) inserted the key at the same
            # instant; the row exists now, so writing again updates it.
            write_state(self.db, MESSAGE_ANALYZER_KEY, value)
