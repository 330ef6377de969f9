"""Transparent gzip: `name.ext.gz` is read as `name.ext`, its unpacked size capped while it unpacks.

The cap is the largest document accepted (RAGSTORE_MAX_DOCUMENT_BYTES): a gzip bomb stops after that many
bytes have come out, never after inflating all of them.
"""

from __future__ import annotations

import zlib

from ragstore.errors import InvalidInput
from ragstore.text.limits import LoadBudget

__all__ = ["gunzip"]

_PIECE = 1 << 20  # bytes inflated between checkpoints


def gunzip(data: bytes, name: str, budget: LoadBudget) -> bytes:
    """The unpacked bytes of a (possibly multi-member) gzip file; PayloadTooLarge past the cap."""
    if not data.startswith(b"\x1f\x8b"):
        raise InvalidInput(f"{name}: is not a gzip file (no gzip header)")
    out: list[bytes] = []
    size = 0
    rest = data
    try:
        while rest:
            inflater = zlib.decompressobj(wbits=31)  # gzip framing; one member at a time
            pending = rest
            while pending:
                budget.check()
                piece = inflater.decompress(pending, _PIECE)
                size += len(piece)
                budget.unpacked(size, "the gzip file")
                out.append(piece)
                pending = inflater.unconsumed_tail
                if inflater.eof:
                    break
            while not inflater.eof:  # input consumed, output still buffered in the inflater
                budget.check()
                piece = inflater.decompress(b"", _PIECE)
                if not piece and not inflater.eof:
                    raise InvalidInput(f"{name}: is a truncated gzip file")
                size += len(piece)
                budget.unpacked(size, "the gzip file")
                out.append(piece)
            rest = inflater.unused_data.lstrip(b"\x00")  # concatenated members; trailing zero padding
    except zlib.error as exc:
        raise InvalidInput(f"{name}: is a corrupt gzip file ({exc})") from exc
    return b"".join(out)
