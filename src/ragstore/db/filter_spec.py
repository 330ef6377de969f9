"""A search filter read from its JSON into a small typed tree, checked and bounded before any SQL is built.

Separate from the SQL (db/filters.py) so that every rule about what a filter may say, and every error
naming the bad part (`filter.$or[1].lang: unknown operator $foo`), lives in one place; the compiler then
only has well-formed trees to translate, on either dialect.

The grammar (docs: README.md, "Filters"):
- an object is the AND of its keys; `{}` matches every document;
- `$and` / `$or`: a non-empty list of filter objects; `$not`: one filter object;
- any other key is a document field or a metadata key, whose value is a scalar (`$eq`), a list (`$in`),
  or an object of operators (`$eq $ne $in $nin $gt $gte $lt $lte $exists`), which are ANDed.
`$ne` and `$nin` are kept as a `Not` over `$eq` / `$in`: one rule for what a missing key does (it is
"not equal"), the same under `$not`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ragstore.errors import InvalidInput
from ragstore.valid_text import checked_json

__all__ = [
    "DATE_FIELDS",
    "FIELD_OPS",
    "INT_FIELDS",
    "MAX_CLAUSES",
    "MAX_DEPTH",
    "MAX_VALUES",
    "STRING_FIELDS",
    "AllOf",
    "AnyOf",
    "FilterNode",
    "Not",
    "Scalar",
    "Test",
    "as_datetime",
    "parse_filter",
]

KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
INT_FIELDS = frozenset({"document_id"})
STRING_FIELDS = frozenset({"source_uri", "title", "mime_type"})
DATE_FIELDS = frozenset({"created_at", "updated_at"})
FIELD_OPS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists")
LOGICAL_OPS = ("$and", "$or", "$not")
# Bounds on one filter: how deep `$and`/`$or`/`$not` nest, how many conditions in all (each operator on a
# field and each logical operator counts one), and how many `$in`/`$nin` values in all (each is a bound
# parameter, and a statement must stay well under SQLite's variable limit).
MAX_DEPTH = 8
MAX_CLAUSES = 256
MAX_VALUES = 1000

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Test:
    """One positive test of one key: `$eq`, `$in`, a range operator, or `$exists` (values: one bool)."""

    path: str
    key: str
    op: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class AllOf:
    items: tuple[FilterNode, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[FilterNode, ...]


@dataclass(frozen=True)
class Not:
    item: FilterNode


FilterNode = Test | AllOf | AnyOf | Not


def _shown(text: str, limit: int = 60) -> str:
    """A name from the request, safe to put in a message (no lone surrogate breaks the JSON of the error)."""
    cut = text if len(text) <= limit else text[:limit] + "…"
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


def _fail(path: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{path}: {problem}", details={"field": path})


class _Reader:
    """One pass over a filter, counting what it spends against the bounds."""

    def __init__(self) -> None:
        self.clauses = 0
        self.values = 0

    def spend(self, path: str, clauses: int = 1, values: int = 0) -> None:
        self.clauses += clauses
        self.values += values
        if self.clauses > MAX_CLAUSES:
            raise _fail(path, f"the filter has more than {MAX_CLAUSES} conditions")
        if self.values > MAX_VALUES:
            raise _fail(path, f"the filter's $in/$nin lists hold more than {MAX_VALUES} values in all")

    def object(self, spec: Any, path: str, depth: int) -> AllOf:
        if not isinstance(spec, dict):
            raise _fail(path, f"a filter must be a JSON object, got {_kind(spec)}")
        if depth > MAX_DEPTH:
            raise _fail(path, f"filters nest at most {MAX_DEPTH} levels deep")
        items: list[FilterNode] = []
        for key, value in spec.items():
            if not isinstance(key, str):
                raise _fail(path, "filter keys must be strings")
            if key.startswith("$"):
                items.append(self.logical(key, value, path, depth))
            else:
                items.extend(self.field(key, value, path))
        return AllOf(tuple(items))

    def logical(self, op: str, value: Any, parent: str, depth: int) -> FilterNode:
        path = f"{parent}.{_shown(op)}"
        if op not in LOGICAL_OPS:
            raise _fail(
                parent, f"unknown operator {_shown(op)} (at this level: {', '.join(LOGICAL_OPS)} or a field name)"
            )
        self.spend(path)
        if op == "$not":
            return Not(self.object(value, path, depth + 1))
        if not isinstance(value, list) or not value:
            raise _fail(path, f"{op} needs a non-empty list of filter objects, got {_kind(value)}")
        items = tuple(self.object(sub, f"{path}[{i}]", depth + 1) for i, sub in enumerate(value))
        return AllOf(items) if op == "$and" else AnyOf(items)

    def field(self, key: str, value: Any, parent: str) -> list[FilterNode]:
        if not KEY.fullmatch(key):
            raise _fail(
                parent,
                f"{_shown(key)!r} is not a valid field or metadata key "
                "(letters, digits, _ . : -, at most 128 characters)",
            )
        path = f"{parent}.{key}"
        if isinstance(value, dict):
            if not value:
                raise _fail(path, f"give at least one operator ({', '.join(FIELD_OPS)})")
            return [self.operator(key, op, operand, path) for op, operand in value.items()]
        if isinstance(value, list):
            return [self.operator(key, "$in", value, path, shorthand=True)]
        return [self.operator(key, "$eq", value, path, shorthand=True)]

    def operator(self, key: str, op: Any, operand: Any, path: str, *, shorthand: bool = False) -> FilterNode:
        where = path if shorthand else f"{path}.{_shown(str(op))}"
        if op not in FIELD_OPS:
            raise _fail(path, f"unknown operator {_shown(str(op))} (supported: {', '.join(FIELD_OPS)})")
        self.spend(where)
        if op == "$exists":
            if not isinstance(operand, bool):
                raise _fail(where, f"$exists takes true or false, got {_kind(operand)}")
            return Test(where, key, "$exists", (operand,))
        if op in ("$in", "$nin"):
            if not isinstance(operand, list) or not operand:
                raise _fail(where, f"{op} needs a non-empty list of values, got {_kind(operand)}")
            self.spend(where, clauses=0, values=len(operand))
            values = tuple(_value(key, v, f"{where}[{i}]") for i, v in enumerate(operand))
            test = Test(where, key, "$in", values)
            return Not(test) if op == "$nin" else test
        value = _value(key, operand, where)
        if op == "$ne":
            return Not(Test(where, key, "$eq", (value,)))
        return Test(where, key, op, (value,))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _value(key: str, value: Any, path: str) -> Scalar:
    """A value to compare `key` with: a scalar of the field's type (any scalar for a metadata key)."""
    if value is None:
        raise _fail(path, 'null is not a filter value (a missing or null key: {"$exists": false} / true)')
    if not isinstance(value, (str, int, float, bool)):
        raise _fail(path, f"values must be strings, numbers or booleans, got {_kind(value)}")
    # Compared in SQL: an integer past 64 bits overflows the driver (a 500), a surrogate or NUL the encoder.
    checked_json(value, path)
    if key in INT_FIELDS and (isinstance(value, bool) or not isinstance(value, int)):
        raise _fail(path, f"{key} is an integer, got {_kind(value)}")
    if (key in STRING_FIELDS or key in DATE_FIELDS) and not isinstance(value, str):
        wanted = "an ISO 8601 date or time" if key in DATE_FIELDS else "a string"
        raise _fail(path, f"{key} is compared with {wanted}, got {_kind(value)}")
    if key in DATE_FIELDS:
        as_datetime(str(value), path)
    return value


def as_datetime(value: str, path: str) -> datetime:
    """An ISO 8601 date or time, in UTC (one without a zone is UTC): SQLite stores the times as UTC text,
    which a bound time in another zone would not match."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _fail(path, f"{_shown(value)!r} is not an ISO 8601 date or time") from exc
    return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def parse_filter(spec: Any, path: str = "filter") -> FilterNode | None:
    """The filter as a tree, or None for no filter (None or `{}`); InvalidInput names the first bad part."""
    if spec is None:
        return None
    tree = _Reader().object(spec, path, 1)
    return tree if tree.items else None
