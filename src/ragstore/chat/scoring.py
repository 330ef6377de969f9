"""BM25 over a small candidate set, for a message search scoped to one user's (or one conversation's)
messages on SQLite.

FTS5 cannot take a set of allowed rowids into its own search: given `rowid IN (scope)`, it walks every match
of the query in the whole store and checks each against the scope, so a common word costs the store's size
(measured: 16 ms at 20,000 messages, far more at a million). A chat user's scope is small (their own
conversations: hundreds to thousands of messages), so reading those messages' stored terms and ranking them
here costs the scope instead. The weights are FTS5's own (the store-wide document frequencies of the
fts5vocab table, the average length over every message), so a scoped search ranks as the unscoped one would.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Sequence

from ragstore.db.engine import Database
from ragstore.lexical.base import QueryTerm, idf

__all__ = ["SCOPE_LIMIT", "ScopedRanker"]

SCOPE_LIMIT = 20_000  # a larger scope is ranked by FTS5 itself
K1 = 1.2
B = 0.75
STATS_TTL_S = 60.0
_TERMS = (
    "SELECT message_id, terms, term_count FROM message_lexemes WHERE message_id IN (SELECT value FROM json_each(?))"
)
_DF = "SELECT doc FROM message_lexemes_vocab WHERE term = ?"
_PREFIX_DF = "SELECT max(doc) FROM message_lexemes_vocab WHERE term >= ? AND term < ?"
_TOTALS = "SELECT count(*), avg(term_count) FROM message_lexemes"


class ScopedRanker:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._totals: tuple[float, int, float] | None = None
        self._df: dict[QueryTerm, tuple[float, int]] = {}

    def rank(self, message_ids: Sequence[int], terms: Sequence[QueryTerm], k: int) -> list[tuple[int, float]]:
        """The best `k` of `message_ids` for `terms` (any of them), best first, with BM25 scores."""
        if not message_ids:
            return []
        total, average = self._stats()
        weights = {term: idf(total, min(self._document_frequency(term), total)) for term in terms}
        exact = {t.text: w for t, w in weights.items() if not t.prefix}
        prefixes = [(t.text, w) for t, w in weights.items() if t.prefix]
        scored: list[tuple[float, int]] = []
        for message_id, stored, length in self.db.raw_sqlite_rows(_TERMS, (json.dumps(list(message_ids)),)):
            counts = Counter(str(stored).split())
            norm = K1 * (1 - B + B * (int(length) / average if average else 1.0))
            score = 0.0
            for word, weight in exact.items():
                tf = counts.get(word, 0)
                if tf:
                    score += weight * tf * (K1 + 1) / (tf + norm)
            for prefix, weight in prefixes:
                tf = sum(n for w, n in counts.items() if w.startswith(prefix))
                if tf:
                    score += weight * tf * (K1 + 1) / (tf + norm)
            if score > 0:
                scored.append((score, int(message_id)))
        scored.sort(key=lambda pair: (-pair[0], -pair[1]))
        return [(message_id, score) for score, message_id in scored[:k]]

    def _stats(self) -> tuple[int, float]:
        now = time.monotonic()
        with self._lock:
            if self._totals is None or now - self._totals[0] > STATS_TTL_S:
                count, average = self.db.raw_sqlite_rows(_TOTALS, ())[0]
                self._totals = (now, int(count or 0), float(average or 0.0))
                self._df.clear()
            return self._totals[1], self._totals[2]

    def _document_frequency(self, term: QueryTerm) -> int:
        with self._lock:
            cached = self._df.get(term)
        if cached is not None:
            return cached[1]
        if term.prefix:
            rows = self.db.raw_sqlite_rows(_PREFIX_DF, (term.text, term.text + "\U0010ffff"))
        else:
            rows = self.db.raw_sqlite_rows(_DF, (term.text,))
        df = int(rows[0][0] or 0) if rows else 0
        with self._lock:
            self._df[term] = (time.monotonic(), df)
        return df
