"""A search checked and keyed but not yet run: what a single search and a batch of them share.

`SearchService.run` prepares one search and finishes it at once. A batch (search/batch.py) prepares every
search first, so that one that is not valid refuses the batch before anything runs, then does the work
several searches need at once (one embedding call for all their query texts, one companion call, one
vector-index call and one SQL read for their dense sides) and fills it in here before each search finishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ragstore.lexical.base import QueryTerm
from ragstore.search.options import Mode, SearchOptions
from ragstore.search.query_cut import QueryCut
from ragstore.search.rows import ChunkRow
from ragstore.search.term_bridge import BridgedQuery

__all__ = ["PreparedSearch"]


@dataclass(slots=True)
class PreparedSearch:
    collection: str  # the name the caller used (the response repeats it)
    query: str | None
    filter_spec: Any
    options: SearchOptions  # checked, the server's defaults applied, a cursor's offset decoded
    vector: np.ndarray | None  # the caller's vector; a batch puts the query's embedding here before it runs
    mode: Mode  # the mode that will run (hybrid falls back to what the request can do)
    asked: list[Any]  # the query and the vector's digest: part of the result-cache key and the cursor
    fingerprint: str  # what a cursor of this search belongs to
    cut: QueryCut | None  # what of the query text is read (None: no text)
    terms: list[QueryTerm] | None = None  # a batch's analysed terms; None: analysed when the search runs
    bridged: BridgedQuery | None = None  # a batch's bridge expansion; None: computed when the search runs
    # A batch's dense side, found with the others' (DenseSearcher.search_many); None: searched when it runs.
    dense: tuple[list[tuple[ChunkRow, float]], int] | None = None
