"""The byte format of a cached search result, shared by the full search path and the event loop's fast path.

An entry is the chunk ids (so the query log of a cached answer names what was shown), a newline, then the
response's JSON fields. Compact JSON escapes every newline inside strings, so the first newline is the
separator, and the fast path can splice the body into a response without parsing it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import orjson

from ragstore.schemas import SearchHit
from ragstore.search.query_cut import QueryCut

__all__ = ["CachedResult", "decode_result", "encode_result", "splice_response"]

# orjson writes the hits (dataclasses) field by field in their declared order, numpy scalars as numbers, and
# anything else it does not know as its str (as json.dumps's default=str did); 5x json's speed on a page of
# hits, which is most of what storing a result costs.
_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True, slots=True)
class CachedResult:
    hits: list[SearchHit]
    dropped: int
    mode: str
    next_cursor: str | None


def encode_result(hits: list[SearchHit], dropped: int, mode: str, next_cursor: str | None) -> bytes:
    body = orjson.dumps(
        {"mode": mode, "hits": hits, "next_cursor": next_cursor, "dropped": dropped}, option=_DUMP_OPTIONS, default=str
    )
    return ",".join(str(h.chunk_id) for h in hits).encode() + b"\n" + body


def decode_result(entry: bytes) -> CachedResult:
    _ids, _, body = entry.partition(b"\n")
    found = orjson.loads(body)
    return CachedResult(
        hits=[SearchHit(**hit) for hit in found["hits"]],
        dropped=int(found["dropped"]),
        mode=found["mode"],
        next_cursor=found["next_cursor"],
    )


def splice_response(
    entry: bytes, *, collection: str, query: str | None, k: int, offset: int, took_ms: float, cut: QueryCut | None
) -> tuple[bytes, str, tuple[int, ...]]:
    """A whole response body from a stored entry without parsing its hits: (body, mode, chunk ids)."""
    ids_line, _, body = entry.partition(b"\n")
    head = json.dumps({"collection": collection, "query": query, "k": k, "offset": offset}, ensure_ascii=False)[
        :-1
    ].encode()
    chunk_ids = tuple(int(i) for i in ids_line.split(b",")) if ids_line else ()
    truncated = b"true" if cut is not None and cut.truncated else b"false"
    used = str(len(cut.text)).encode() if cut is not None else b"null"
    response = (
        head
        + b","
        + body[1:-1]
        + f',"took_ms":{took_ms},"cached":true,"query_truncated":'.encode()
        + truncated
        + b',"query_chars_used":'
        + used
        + b"}"
    )
    return response, _stored_mode(body), chunk_ids


def _stored_mode(body: bytes) -> str:
    """The mode of an entry's JSON, which starts `{"mode":"..."` (see encode_result)."""
    end = body.find(b'"', 9)
    return body[9:end].decode() if body.startswith(b'{"mode":"') and end > 9 else "unknown"
