"""Which analyzer a collection's terms were built with, analysing for ingest and query, and re-indexing.

A collection's `lexical_indexes` row names the analyzer (and version) of every term it holds. Ingest and
search use that analyzer, not the configured one, so a query is always analysed like the chunks it is
matched against. When the configured analyzer differs (or the row is missing: a collection from before the
lexical index), `reindex` rewrites every term of the collection and the row in one transaction: a search
sees the old terms or the new ones, never a mixture.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ragstore.db.engine import Database
from ragstore.db.models import ChunkLexeme, Document, DocumentChunk, LexicalIndexState, utcnow
from ragstore.db.versions import bump_write_version
from ragstore.errors import Unavailable
from ragstore.lexical.base import QueryTerm, lexeme_rows, lexical_text, query_terms, write_lexemes
from ragstore.text.analyzers import Analyzer, BigramAnalyzer, KiwiAnalyzer, kiwi_available, shared_analyzer

__all__ = ["AnalyzerState", "LexicalIndexer"]

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
BATCH = 2000


@dataclass(frozen=True)
class AnalyzerState:
    analyzer: str
    version: str


class LexicalIndexer:
    def __init__(self, db: Database, configured: str = "auto") -> None:
        self.db = db
        self.configured = configured
        self._analyzers: dict[str, Analyzer] = {}
        self._states: dict[int, AnalyzerState | None] = {}
        self._lock = threading.Lock()

    # -- analyzers -----------------------------------------------------------------------------------------
    def target(self) -> Analyzer:
        """The configured analyzer (created once; kiwi loads its model on first use)."""
        return self._get(self.configured)

    def _get(self, name: str) -> Analyzer:
        with self._lock:
            found = self._analyzers.get(name)
            if found is None:
                found = shared_analyzer(name)
                self._analyzers[name] = found
                self._analyzers[found.name] = found
            return found

    def analyzer_for(self, state: AnalyzerState | None) -> Analyzer:
        """The analyzer that reproduces a collection's terms exactly (a missing state: the configured one)."""
        if state is None:
            return self.target()
        if state.analyzer == BigramAnalyzer.name and state.version == BigramAnalyzer.version:
            return self._get("bigram")
        if state.analyzer == KiwiAnalyzer.name and kiwi_available():
            kiwi = self._get("kiwi")
            if kiwi.version == state.version:
                return kiwi
        raise Unavailable(
            f"the lexical index was built with analyzer {state.analyzer} {state.version}, which this process "
            f"cannot reproduce (it is configured with {self.configured!r}); re-index with `ragstore index relex`"
        )

    # -- state ---------------------------------------------------------------------------------------------
    @staticmethod
    def read_state(s: Session, collection_id: int) -> AnalyzerState | None:
        row = s.execute(
            select(LexicalIndexState.analyzer, LexicalIndexState.analyzer_version).where(
                LexicalIndexState.collection_id == collection_id
            )
        ).first()
        return AnalyzerState(row[0], row[1]) if row else None

    def state(self, collection_id: int, *, fresh: bool = False) -> AnalyzerState | None:
        """The recorded analyzer; cached per process until `forget` (a re-index bumps the write version,
        and the search path calls `forget` when the version moves)."""
        if not fresh and collection_id in self._states:
            return self._states[collection_id]
        with self.db.read() as s:
            found = self.read_state(s, collection_id)
        self._states[collection_id] = found
        return found

    def forget(self, collection_id: int | None = None) -> None:
        if collection_id is None:
            self._states.clear()
        else:
            self._states.pop(collection_id, None)

    def register(self, s: Session, collection_id: int) -> None:
        """A new collection's terms will be built with the configured analyzer (in its creating transaction)."""
        target = self.target()
        s.add(LexicalIndexState(collection_id=collection_id, analyzer=target.name, analyzer_version=target.version))

    def is_current(self, state: AnalyzerState | None) -> bool:
        target = self.target()
        return state is not None and (state.analyzer, state.version) == (target.name, target.version)

    # -- terms ---------------------------------------------------------------------------------------------
    def query(self, collection_id: int, text: str) -> list[QueryTerm]:
        analyzer = self.analyzer_for(self.state(collection_id))
        return query_terms(analyzer.terms(text), prefix_single_syllables=analyzer.name == BigramAnalyzer.name)

    @staticmethod
    def rows(
        analyzer: Analyzer, collection_id: int, chunk_ids: Sequence[int], texts: Sequence[str]
    ) -> list[dict[str, Any]]:
        return lexeme_rows(collection_id, chunk_ids, analyzer.terms_batch(texts))

    # -- re-index ------------------------------------------------------------------------------------------
    def reindex(self, collection_id: int, *, progress: Progress | None = None, force: bool = False) -> int:
        """Rewrite every term of the collection with the configured analyzer; returns the chunks analysed.

        The analysis (the slow part) runs outside any transaction; the swap is one transaction that also
        analyses chunks added meanwhile, records the analyzer and bumps the write version.
        """
        target = self.target()
        before = self.state(collection_id, fresh=True)
        if self.is_current(before) and not force:
            return 0
        with self.db.read() as s:
            total = s.scalar(select(func.count()).where(DocumentChunk.collection_id == collection_id)) or 0
        analysed: dict[int, dict[str, Any]] = {}
        last = 0
        while True:
            with self.db.read() as s:
                batch = s.execute(
                    select(DocumentChunk.id, Document.title, DocumentChunk.text)
                    .join(Document, Document.id == DocumentChunk.document_id)
                    .where(DocumentChunk.collection_id == collection_id, DocumentChunk.id > last)
                    .order_by(DocumentChunk.id)
                    .limit(BATCH)
                ).all()
            if not batch:
                break
            texts = [lexical_text(r[1], r[2]) for r in batch]
            for row in self.rows(target, collection_id, [r[0] for r in batch], texts):
                analysed[row["chunk_id"]] = row
            last = int(batch[-1][0])
            if progress:
                progress(len(analysed), max(total, len(analysed)))

        def swap(s: Session) -> int:
            now_state = self.read_state(s, collection_id)
            if now_state != before and self.is_current(now_state) and not force:
                return 0  # another process re-indexed meanwhile
            present = {
                int(i): lexical_text(title, chunk_text)
                for i, title, chunk_text in s.execute(
                    select(DocumentChunk.id, Document.title, DocumentChunk.text)
                    .join(Document, Document.id == DocumentChunk.document_id)
                    .where(DocumentChunk.collection_id == collection_id)
                )
            }
            late = [i for i in present if i not in analysed]
            rows = [analysed[i] for i in present if i in analysed]
            if late:
                rows += self.rows(target, collection_id, late, [present[i] for i in late])
            s.execute(delete(ChunkLexeme).where(ChunkLexeme.collection_id == collection_id))
            write_lexemes(s, rows)
            s.execute(delete(LexicalIndexState).where(LexicalIndexState.collection_id == collection_id))
            s.add(
                LexicalIndexState(
                    collection_id=collection_id,
                    analyzer=target.name,
                    analyzer_version=target.version,
                    updated_at=utcnow(),
                )
            )
            bump_write_version(s, collection_id)
            return len(rows)

        done = self.db.write(swap)
        self.forget(collection_id)
        log.info(
            "lexical index of collection %d: %d chunks analysed with %s %s (was %s)",
            collection_id,
            done,
            target.name,
            target.version,
            f"{before.analyzer} {before.version}" if before else "not built",
        )
        return done
