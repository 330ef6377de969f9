"""Dense search: the vector index proposes, SQL disposes.

A vector hit is shown only if SQL holds its chunk visible (db/visibility.py); anything else (an orphan
vector, a chunk still pending or being deleted) is dropped and counted. When drops leave fewer
than asked, the index is asked again for more, so a few orphans never shorten a result list. A metadata
filter is applied by one of two strategies, chosen by how many chunks it keeps (`search_filtered`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, Select

from ragstore.db.engine import Database
from ragstore.db.filter_memory import FilterMemory
from ragstore.db.visibility import visible_chunk_ids
from ragstore.search.rerank import exact_order
from ragstore.search.rows import ChunkRow, read_rows, sqlite_text
from ragstore.vectors.base import ReplicaIndex, VectorHit, VectorIndex, search_depth

__all__ = ["DenseSearcher", "RowReader", "SearchCounters"]

log = logging.getLogger(__name__)
MAX_ROUNDS = 4
# A filtered search first asks the graph for this many candidates (at least 4 per result wanted) and checks
# them against the filter in SQL: a filter keeping half the collection is answered by that probe alone.
PROBE = 64
# A post-filtered graph search asks for at most this many candidates (usearch at 100,000 vectors: 0.1 ms
# for 64, 1.3 ms for 400, 5.7 ms for 1,000): past it, the allowed chunks are listed instead.
POSTFILTER_MAX = 1_000
# When the probe says a filter keeps at most this many chunks, they are listed (the facet indexes answer)
# and scored exactly: cheaper than any graph walk deep enough to find ten of them.
LIST_ALLOWED_MAX = 5_000
# A filter keeping at most this share has its allowed ids listed once per collection version and kept: the
# candidates of later probes are then checked in memory, not in SQL (a tenth of 100,000 chunks: listing
# costs ~8 ms once, each SQL check of 200 candidates ~1 ms). Bounded by the ids kept over all filters.
KEEP_ALLOWED_SHARE = 0.3
KEEP_ALLOWED_IDS = 4_000_000  # 32 MB

# Reads the rows of some chunk ids (search/rows.py's `read_rows`, or a reader that reads more with them).
RowReader = Callable[[list[int]], dict[int, ChunkRow]]


@dataclass
class SearchCounters:
    searches: int = 0
    dropped_hits: int = 0
    orphan_hits: int = 0
    filtered_by_probe: int = 0  # filtered searches answered by post-filtered graph candidates
    filtered_by_listing: int = 0  # ... by listing the allowed chunks


def _deep_enough(n: int, share: float) -> int:
    """Candidates to ask the graph for, so that `n` of them pass a filter keeping `share` of the chunks:
    1.5 times the expectation (at share 0.1 and n 10, 166: fewer than 10 pass in about 1 search of 40,
    which then asks again), since the graph's cost grows faster than its depth (0.4 ms for 100 candidates,
    1.1 ms for 200, 7 ms for 1,000 at 100,000 vectors). Twice the expectation (216) asked again once in
    800 searches, and its p50 was 1.25x this one's (docs/benchmarks.md)."""
    return max(4 * n, int(1.5 * n / share) + 16)


class DenseSearcher:
    def __init__(self, db: Database, index: VectorIndex) -> None:
        self.db = db
        self.index = index
        self.counters = SearchCounters()
        self.list_allowed_max = LIST_ALLOWED_MAX
        self.postfilter_max = POSTFILTER_MAX
        self._statements: dict[tuple[int, int], tuple[ColumnElement[bool], Select[int]]] = {}
        self._filters = FilterMemory(KEEP_ALLOWED_IDS)
        self._lock = threading.Lock()

    def allowed_ids(self, collection_id: int, condition: ColumnElement[bool]) -> list[int]:
        """Ids of the visible chunks whose document passes the filter: the only ids the index may return."""
        key = (collection_id, id(condition))
        cached = self._statements.get(key)
        kept = cached if cached is not None and cached[0] is condition else None
        if kept is None:
            kept = (condition, visible_chunk_ids(collection_id, condition))
            with self._lock:
                self._statements[key] = kept
                while len(self._statements) > 1024:
                    self._statements.pop(next(iter(self._statements)))
        if self.db.is_sqlite:  # the raw driver: SQLAlchemy's work per call costs more than listing 1,000 ids
            sql, params = sqlite_text(kept[1])
            return [int(r[0]) for r in self.db.raw_sqlite_rows(sql, params)]
        return [int(r[0]) for r in self.db.fetch(kept[1])]

    def search(
        self,
        collection_id: int,
        vector: NDArray[np.float32],
        n: int,
        allowed: list[int] | None = None,
        *,
        model: str | None = None,
        read: RowReader | None = None,
    ) -> tuple[list[tuple[ChunkRow, float]], int]:
        """Up to `n` visible chunks nearest to `vector`, best first, with their similarity; and the number of
        vector hits dropped on the way. `model` (the collection's) lets an 8-bit index's candidates be
        re-ranked exactly (search/rerank.py). `read`: how the hits' rows are read (a bridged hybrid search
        reads their vectors in the same statement); `read_rows` by default."""
        if allowed is not None and not allowed:
            return [], 0
        shown, n = n, self._asked(n, model)
        fetch = n
        dropped = orphans = 0
        found: list[tuple[ChunkRow, float]] = []
        for _ in range(MAX_ROUNDS):
            vector_hits = self.index.search(collection_id, vector, fetch, allowed)
            ids = [h.id for h in vector_hits]
            found, dropped, orphans = _visible(vector_hits, read(ids) if read is not None else read_rows(self.db, ids))
            if len(found) >= n or len(vector_hits) < fetch:
                break
            fetch *= 4
        self._count(dropped, orphans, collection_id)
        return self._ranked(found[:n], shown, model, vector), dropped

    def search_many(
        self, collection_id: int, vectors: list[NDArray[np.float32]], n: int, *, model: str | None = None
    ) -> list[tuple[list[tuple[ChunkRow, float]], int]]:
        """`search` with no filter for each of several vectors: one index call (`VectorIndex.search_many`) and one
        SQL read for all their hits. A vector left with fewer than `n` visible hits by drops is searched again
        alone, as `search` would go on to ask for more."""
        if not vectors:
            return []
        shown, n = n, self._asked(n, model)
        proposed = self.index.search_many(collection_id, np.stack(vectors), n)
        rows = read_rows(self.db, sorted({h.id for hits in proposed for h in hits}))
        out = []
        for vector, vector_hits in zip(vectors, proposed, strict=True):
            found, dropped, orphans = _visible(vector_hits, rows)
            if len(found) < n and len(vector_hits) >= n:
                out.append(self.search(collection_id, vector, shown, model=model))
                continue
            self._count(dropped, orphans, collection_id)
            out.append((self._ranked(found[:n], shown, model, vector), dropped))
        return out

    def _asked(self, n: int, model: str | None) -> int:
        return search_depth(n, approximate=bool(model) and self.index.approximate_scores)

    def _ranked(
        self, found: list[tuple[ChunkRow, float]], n: int, model: str | None, vector: NDArray[np.float32]
    ) -> list[tuple[ChunkRow, float]]:
        """The best `n`, re-ranked exactly first when the index's scores are approximate."""
        if model and self.index.approximate_scores:
            found = exact_order(self.db, model, vector, found, [row.id for row, _ in found])
        return found[:n]

    def _count(self, dropped: int, orphans: int, collection_id: int) -> None:
        with self._lock:
            self.counters.searches += 1
            self.counters.dropped_hits += dropped
            self.counters.orphan_hits += orphans
        if orphans:
            log.warning(
                "search dropped %d vector hits with no chunk row (orphans) in collection %d", orphans, collection_id
            )

    def search_filtered(
        self,
        collection_id: int,
        vector: NDArray[np.float32],
        n: int,
        *,
        passes: ColumnElement[bool],
        indexed: ColumnElement[bool],
        model: str | None = None,
        version: int | None = None,
        read: RowReader | None = None,
    ) -> tuple[list[tuple[ChunkRow, float]], int]:
        """`search` among the chunks whose document passes a filter, by the cheaper of two strategies.

        Listing every allowed id costs the same whatever the query (20,000 ids: tens of ms), and walking the
        graph for candidates then checking them costs in proportion to how rare the allowed chunks are. So
        a probe of the graph's nearest candidates, checked in SQL (`passes`, the exact condition), first
        measures the filter's share: a common filter is answered from those candidates or a deeper
        probe; a rare one lists its chunks through the facet indexes (`indexed`) for an exact scan.
        Given the collection's write `version`, the list of a filter that is not common is kept until the
        next write, and later probes check their candidates against it in memory. `read`: as for `search`
        (the probe's check against the filter reads rows alone).
        """
        if not isinstance(self.index, ReplicaIndex):
            # Milvus and Chroma filter inside their own search, and a probe there costs round trips.
            allowed = self.allowed_ids(collection_id, indexed)
            return self.search(collection_id, vector, n, allowed, model=model, read=read)
        shown, n = n, self._asked(n, model)
        total = max(self.index.count(collection_id), 1)
        key = (collection_id, id(passes))
        share = self._filters.share(key, passes)
        if version is not None and share is not None and share <= KEEP_ALLOWED_SHARE:
            kept_ids = self._filters.kept(key, passes, version)
            if kept_ids is None:
                kept_ids = np.unique(np.asarray(self.allowed_ids(collection_id, indexed), dtype=np.int64))
                self._filters.keep(key, passes, version, kept_ids)
                self._filters.remember(key, passes, len(kept_ids) / total)
            return self._among_kept(collection_id, vector, n, shown, kept_ids, model, read)
        if share is None or share * total > self.list_allowed_max:
            fetch = max(PROBE, 4 * n) if share is None else _deep_enough(n, share)
            for _ in range(3):
                if fetch > self.postfilter_max:
                    break
                vector_hits = self.index.search(collection_id, vector, min(fetch, total))
                rows = read_rows(self.db, [h.id for h in vector_hits], where=passes)
                kept = [(rows[h.id], float(h.score)) for h in vector_hits if h.id in rows and rows[h.id].visible]
                if len(vector_hits) >= PROBE:
                    share = max(len(kept), 0.5) / len(vector_hits)
                    self._filters.remember(key, passes, share)
                if len(kept) >= n or len(vector_hits) < fetch:  # enough, or the whole collection was read
                    self._count(0, 0, collection_id)
                    self.counters.filtered_by_probe += 1
                    return self._ranked(kept[:n], shown, model, vector), 0
                if share is None or share * total <= self.list_allowed_max:
                    break
                fetch = max(_deep_enough(n, share), 2 * fetch)
        allowed = self.allowed_ids(collection_id, indexed)
        self._filters.remember(key, passes, len(allowed) / total)
        self.counters.filtered_by_listing += 1
        return self.search(collection_id, vector, shown, allowed, model=model, read=read)

    def _among_kept(
        self,
        collection_id: int,
        vector: NDArray[np.float32],
        n: int,
        shown: int,
        allowed: NDArray[np.int64],
        model: str | None,
        read: RowReader | None = None,
    ) -> tuple[list[tuple[ChunkRow, float]], int]:
        """A filtered search whose allowed ids (sorted) are at hand: few are scored exactly; among many, the
        graph's candidates are checked against them in memory and only the rows shown are read."""
        total = max(self.index.count(collection_id), 1)
        if len(allowed) > self.list_allowed_max:
            fetch = _deep_enough(n, max(len(allowed), 1) / total)
            while fetch <= self.postfilter_max:
                # Arrays, not hit objects: hundreds of candidates are checked, ten are shown.
                ids, scores = self.index.search_keys(collection_id, vector, min(fetch, total))
                at = np.minimum(np.searchsorted(allowed, ids), len(allowed) - 1)
                inside = np.flatnonzero(allowed[at] == ids)
                if len(inside) >= n or len(ids) < fetch:
                    picked = ids[inside[:n]].tolist()
                    rows = read(picked) if read is not None else read_rows(self.db, picked)
                    found = [(rows[i], float(s)) for i, s in zip(picked, scores[inside[:n]], strict=True) if i in rows]
                    if all(row.visible for row, _ in found) and len(found) == len(picked):
                        self._count(0, 0, collection_id)
                        self.counters.filtered_by_probe += 1
                        return self._ranked(found, shown, model, vector), 0
                    break  # a row changed since the list was made: the exact path below drops it
                fetch *= 2
        self.counters.filtered_by_listing += 1
        return self.search(collection_id, vector, shown, allowed.tolist(), model=model, read=read)


def _visible(vector_hits: list[VectorHit], rows: dict[int, ChunkRow]) -> tuple[list[tuple[ChunkRow, float]], int, int]:
    """The hits whose chunk SQL holds visible, with their similarity; and how many were dropped, how many of
    those for having no row at all (orphans)."""
    found = []
    dropped = orphans = 0
    for vh in vector_hits:
        row = rows.get(vh.id)
        if row is None or not row.visible:
            dropped += 1
            orphans += int(row is None)
            continue
        found.append((row, float(vh.score)))
    return found, dropped, orphans
