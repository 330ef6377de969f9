"""Every string that enters ragstore is valid Unicode before it is stored: the one place that says so.

A lone surrogate ("\\ud800") is a Python `str` but no Unicode text: it cannot be encoded as UTF-8, so a
metadata value holding one was stored (SQLite keeps the escape) and then failed every read that serialised
it (listing, showing, searching: 500 until the document was deleted by id). NUL is valid Unicode but
PostgreSQL refuses it in `text` and `jsonb`, so one dialect would store what the other refuses.

The rule, the same on both dialects and through every face (the API's models call it in validators, so a
request is refused with 422 before any work; the core calls it again, so the CLI and Python callers get the
same answer):

* lone surrogates: refused everywhere, naming the field;
* NUL: refused in names, keys, sources, metadata, queries and filters; removed from document text and
  titles (extracted PDF text carries stray NULs that mean nothing, a title is often its first line, and a
  document should not fail for them);
* JSON values (metadata): keys and string values checked at any depth, numbers must be finite and
  integers must fit a signed 64-bit column, so a later filter or read can compare them in SQL.

This module sits low in the layers (beside `keys`) because the request models use it.
"""

from __future__ import annotations

import math
from typing import Any

from ragstore.errors import InvalidInput

__all__ = ["INT64_MAX", "INT64_MIN", "ascii_digits", "checked_json", "checked_text", "text_problem", "without_nul"]

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def text_problem(value: str, *, allow_nul: bool = False) -> str | None:
    """What makes `value` unstorable, or None. Encoding is C speed: ~1 ms per MB."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate (U+{ord(value[exc.start]):04X}) at character {exc.start}: not valid Unicode"
    if not allow_nul and "\x00" in value:
        return f"contains a NUL character at character {value.index(chr(0))}"
    return None


def checked_text(value: str, field: str, *, allow_nul: bool = False) -> str:
    """`value`, or InvalidInput naming `field` (never echoing the value: it may not even be printable)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: must be a string, got {type(value).__name__}", details={"field": field})
    problem = text_problem(value, allow_nul=allow_nul)
    if problem is not None:
        raise InvalidInput(f"{field}: {problem}", details={"field": field})
    return value


def without_nul(value: str) -> str:
    return value.replace("\x00", "") if "\x00" in value else value


def json_problem(value: Any, field: str) -> tuple[str, str] | None:
    """(where, what) of the first unstorable part of a JSON value, walked without recursion (depth is the
    request limits' business; this must not be the thing a deep value crashes)."""
    stack: list[tuple[str, Any]] = [(field, value)]
    while stack:
        where, item = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return where, problem
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                return where, "is an integer outside the signed 64-bit range"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return where, "is not a finite number"
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    return where, f"has a key that is not a string ({type(key).__name__})"
                problem = text_problem(key)
                if problem is not None:
                    return f"{where} (a key)", problem
                stack.append((f"{where}.{key}", sub))
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{where}[{i}]", sub) for i, sub in enumerate(item))
        else:
            return where, f"is a {type(item).__name__}, not a JSON value"
    return None


def checked_json(value: Any, field: str) -> Any:
    """`value` if every key and string in it is storable text and every number fits; else InvalidInput."""
    found = json_problem(value, field)
    if found is not None:
        where, problem = found
        where = where.encode("utf-8", "backslashreplace").decode("utf-8")  # a bad key must not break the message
        raise InvalidInput(f"{where}: {problem}", details={"field": where})
    return value


def ascii_digits(text: str) -> bool:
    """True when `int(text)` will take it as a plain non-negative decimal.

    `str.isdigit` is also true for superscripts and other Unicode digits ("³" from a Latin-1 header byte or a
    URL), which `int` refuses: a check with `isdigit` alone turned such input into a 500."""
    return text.isascii() and text.isdigit()
