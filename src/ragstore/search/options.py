"""A search's options, checked and with defaults applied, and the cursor that continues it.

The same normalised options key the result cache on the full path and on the server's event-loop fast
path; both build them here, or neither would hit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, get_args

from ragstore.config import Settings
from ragstore.errors import InvalidInput
from ragstore.schemas import MAX_SEARCH_DEPTH, HybridFusion, SearchMode, SearchRequest

__all__ = [
    "MAX_DEPTH",
    "MODES",
    "Mode",
    "SearchOptions",
    "decode_cursor",
    "encode_cursor",
    "make_options",
    "request_fingerprint",
]

Mode = SearchMode
MODES: tuple[Mode, ...] = get_args(SearchMode)
FUSIONS: tuple[HybridFusion, ...] = get_args(HybridFusion)
MAX_DEPTH = MAX_SEARCH_DEPTH


@dataclass(frozen=True)
class SearchOptions:
    mode: Mode
    k: int
    offset: int
    min_score: float | None
    explain: bool
    rrf_k: int
    dense_weight: float
    lexical_weight: float
    min_coverage: float
    fusion: HybridFusion = "rrf"

    def key_parts(self) -> list[Any]:
        return [
            self.mode,
            self.k,
            self.offset,
            self.min_score,
            self.explain,
            self.rrf_k,
            self.dense_weight,
            self.lexical_weight,
            self.min_coverage,
            self.fusion,
        ]


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be from {low:g} to {high:g}, got {value!r}")
    return float(value)


def make_options(settings: Settings, request: SearchRequest) -> SearchOptions:
    """The request's scoring and paging options, checked, with the server's defaults for what it leaves out.

    The HTTP API has validated the request against the model already; a Python caller's has not, so the
    checks here are the facade's own, with messages that name the option.
    """
    mode, k, offset, min_score, explain = request.mode, request.k, request.offset, request.min_score, request.explain
    rrf_k, dense_weight, lexical_weight = request.rrf_k, request.dense_weight, request.lexical_weight
    min_coverage, fusion = request.min_coverage, request.fusion
    chosen = mode if mode is not None else settings.search_mode
    if chosen not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_DEPTH:
        raise InvalidInput(f"k must be an integer from 1 to {MAX_DEPTH}, got {k!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInput(f"offset must be a non-negative integer, got {offset!r}")
    if offset + k > MAX_DEPTH:
        raise InvalidInput(f"offset + k must be at most {MAX_DEPTH}, got {offset + k}")
    if rrf_k is not None and (isinstance(rrf_k, bool) or not isinstance(rrf_k, int) or not 1 <= rrf_k <= 10_000):
        raise InvalidInput(f"rrf_k must be an integer from 1 to 10000, got {rrf_k!r}")
    if fusion is not None and fusion not in FUSIONS:
        raise InvalidInput(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
    if not isinstance(explain, bool):
        raise InvalidInput(f"explain must be true or false, got {explain!r}")
    options = SearchOptions(
        mode=chosen,
        k=k,
        offset=offset,
        min_score=None if min_score is None else _number("min_score", min_score, -1e9, 1e9),
        explain=explain,
        rrf_k=settings.hybrid_rrf_k if rrf_k is None else rrf_k,
        dense_weight=settings.hybrid_dense_weight
        if dense_weight is None
        else _number("dense_weight", dense_weight, 0, 100),
        lexical_weight=settings.hybrid_lexical_weight
        if lexical_weight is None
        else _number("lexical_weight", lexical_weight, 0, 100),
        min_coverage=settings.hybrid_min_coverage
        if min_coverage is None
        else _number("min_coverage", min_coverage, 0, 1),
        fusion=settings.hybrid_fusion if fusion is None else fusion,
    )
    if options.dense_weight == 0 and options.lexical_weight == 0:
        raise InvalidInput("dense_weight and lexical_weight cannot both be 0")
    return options


def request_fingerprint(parts: list[Any]) -> str:
    """What a cursor belongs to: the search without its offset."""
    raw = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.blake2b(raw.encode(), digest_size=8).hexdigest()


def encode_cursor(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "f": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> int:
    """The offset a cursor continues from; refuses a cursor that is malformed or from another search."""
    if not isinstance(cursor, str) or len(cursor) > 200:
        raise InvalidInput("cursor is not one this server issued")
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset, owner = data["o"], data["f"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise InvalidInput("cursor is not one this server issued") from exc
    if not isinstance(offset, int) or offset < 0 or owner != fingerprint:
        raise InvalidInput("cursor belongs to another search (query, mode, filter, k and scoring must not change)")
    return offset
