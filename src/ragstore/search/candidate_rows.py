"""Candidates' rows and their stored vectors, read by chunk id in one statement.

A bridged hybrid search needs, for each candidate, the row a page shows and the candidate's vectors under
the collection's model and the companion's (search/bridge_fusion.py). Read apart, that was a statement for
the dense side's rows, one for their vectors, one for the lexical side's vectors and one for the rows of the
page: on PostgreSQL each is a round trip (0.5-1.5 ms at 100,000 chunks, docs/benchmarks.md, issue #22),
where SQLite reads in process. One statement per side joins the two `embeddings` rows (looked up by that
table's primary key, model and content hash) to the chunk and its document, so the rows and the vectors come
back together. A chunk without a vector under a model gets NULL there (a chunk from before the companion:
the bridge fusion computes that vector then, from the text and content hash read here). On PostgreSQL the
statement goes through psycopg itself for results in binary format (`Database.raw_postgres_rows`): in
text format the vectors came as hex, twice the bytes and a decoding pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragstore.db.compiled import postgres_form
from ragstore.db.engine import Database
from ragstore.search.rows import ChunkRow, sqlite_chunk_row

__all__ = ["CandidateRows", "read_candidates"]


@dataclass
class CandidateRows:
    """What one read found: each chunk's row, its vector under the collection's model (`own`) and under the
    companion's (`other`, when asked), and the content hash of each row (to compute a missing vector)."""

    rows: dict[int, ChunkRow] = field(default_factory=dict)
    own: dict[int, NDArray[np.float32]] = field(default_factory=dict)
    other: dict[int, NDArray[np.float32]] = field(default_factory=dict)
    hashes: dict[int, str] = field(default_factory=dict)

    def update(self, more: CandidateRows) -> None:
        self.rows.update(more.rows)
        self.own.update(more.own)
        self.other.update(more.other)
        self.hashes.update(more.hashes)


def read_candidates(db: Database, ids: list[int], model: str, companion: str | None) -> CandidateRows:
    """The rows of these chunk ids with their vectors under `model` and, unless None, `companion`."""
    out = CandidateRows()
    if not ids:
        return out
    rows: list[Any]
    if db.is_sqlite:
        # The raw driver and one JSON parameter: a constant statement text, as read_rows does.
        sql, args = (
            (_SQLITE_TWO, (model, companion, json.dumps(ids))) if companion else (_SQLITE_ONE, (model, json.dumps(ids)))
        )
        rows = db.raw_sqlite_rows(sql, args)
        for r in rows:
            chunk_id = int(r[0])
            out.rows[chunk_id] = sqlite_chunk_row(r)
            _keep(out, chunk_id, r[9], r[10], r[11] if companion else None)
        return out
    # psycopg itself, for results in binary format: the vectors come as bytes, not as hex to decode.
    rows = db.raw_postgres_rows(*((_PG_TWO, (model, companion, ids)) if companion else (_PG_ONE, (model, ids))))
    for r in rows:
        chunk_id = int(r[0])
        out.rows[chunk_id] = ChunkRow(*r[:9])
        _keep(out, chunk_id, r[9], r[10], r[11] if companion else None)
    return out


def _keep(out: CandidateRows, chunk_id: int, content_hash: str, own: bytes | None, other: bytes | None) -> None:
    out.hashes[chunk_id] = content_hash
    if own is not None:
        out.own[chunk_id] = np.frombuffer(own, dtype="<f4")
    if other is not None:
        out.other[chunk_id] = np.frombuffer(other, dtype="<f4")


_ROW_SQL = (
    "SELECT c.id, c.text, c.ordinal, c.status, d.id, d.source_uri, d.title, d.metadata, d.status, c.content_hash, "
    "e.vector{other_column} FROM document_chunks AS c JOIN documents AS d ON d.id = c.document_id "
    "LEFT JOIN embeddings AS e ON e.model = ? AND e.content_hash = c.content_hash{other_join} "
    "WHERE c.id IN (SELECT value FROM json_each(?))"
)
_SQLITE_ONE = _ROW_SQL.format(other_column="", other_join="")
_SQLITE_TWO = _ROW_SQL.format(
    other_column=", o.vector",
    other_join=" LEFT JOIN embeddings AS o ON o.model = ? AND o.content_hash = c.content_hash",
)


_PG_ONE, _PG_TWO = postgres_form(_SQLITE_ONE), postgres_form(_SQLITE_TWO)
