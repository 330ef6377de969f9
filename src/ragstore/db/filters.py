"""Metadata filters, compiled to SQL so that they select chunk ids inside the database.

A filter (grammar and checks: db/filter_spec.py; semantics: README.md, "Filters") names document
fields (`document_id`, `source_uri`, `title`, `mime_type`, and the dates `created_at`, `updated_at`,
compared with ISO 8601 values such as "2024-05-01" or "2024-05-01T09:00:00+09:00") or metadata keys; a
date kept in metadata as an ISO 8601 string compares correctly as a string when all values share one format.

Comparisons of metadata are by JSON type, the same on both dialects: a string equals and orders only
against strings (by code point: PostgreSQL compares them `COLLATE "C"`, as SQLite and Python do), a number
against numbers (1 equals 1.0), a boolean against booleans (false < true); a list, an object or a null in
metadata equals nothing. So `{"n": 5}` never matches `"5"` or `true`, and no value in metadata can make the
SQL fail (PostgreSQL compares `jsonb` to `jsonb` instead of casting the text).

Negation (`$not`, and `$ne`/`$nin`, which are `$not` over `$eq`/`$in`) is pushed down to the tests by De
Morgan's laws, and a negated test is `NOT COALESCE(test, false)`: SQL's NULL (a missing key) would
otherwise make `NOT` drop the row where the filter's meaning keeps it. Without negation, NULL and false
select the same rows, so positive tests stay plain (and PostgreSQL's `metadata @> {...}` for equality and
`$in` keeps using the GIN index on documents.metadata).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, false, func, not_, or_, true, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import True_

from ragstore.db.facets import facet_superset
from ragstore.db.filter_spec import (
    DATE_FIELDS,
    AllOf,
    AnyOf,
    FilterNode,
    Not,
    Scalar,
    Test,
    as_datetime,
    parse_filter,
)
from ragstore.db.models import Document

__all__ = ["compile_filter", "compile_tree"]

_COLUMNS: dict[str, Any] = {
    "document_id": Document.id,
    "source_uri": Document.source_uri,
    "title": Document.title,
    "mime_type": Document.mime_type,
    "created_at": Document.created_at,
    "updated_at": Document.updated_at,
}
_STRING_COLUMNS = frozenset({"source_uri", "title", "mime_type"})
_RANGES: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}
_SQLITE_NUMBER = ("integer", "real")


def _kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "string" if isinstance(value, str) else "number"


def _by_kind(values: Sequence[Scalar]) -> dict[str, list[Scalar]]:
    groups: dict[str, list[Scalar]] = {}
    for v in values:
        groups.setdefault(_kind(v), []).append(v)
    return groups


def _column_test(test: Test, *, postgres: bool) -> ColumnElement[bool]:
    """A document column: never NULL, so the test is two-valued."""
    column = _COLUMNS[test.key]
    if test.op == "$exists":
        return true() if test.values[0] else false()
    values: list[Any] = list(test.values)
    if test.key in DATE_FIELDS:
        values = [as_datetime(str(v), test.path) for v in values]
    if test.op == "$in":
        return column.in_(values)  # type: ignore[no-any-return]
    if test.op == "$eq":
        return column == values[0]  # type: ignore[no-any-return]
    if postgres and test.key in _STRING_COLUMNS:
        column = column.collate("C")  # code point order, as on SQLite
    return _RANGES[test.op](column, values[0])


def _sqlite_metadata(test: Test) -> ColumnElement[bool]:
    """SQLite: `json_extract` gives the SQL value (a string's text, a number, 1/0 for true/false, the JSON
    text of a list or object), `json_type` which of them it was (NULL: the key is missing)."""
    path = '$."' + test.key + '"'  # the key pattern admits no quote or backslash
    kind = func.json_type(Document.metadata_, path)
    if test.op == "$exists":
        return kind.is_not(None) if test.values[0] else kind.is_(None)
    value = func.json_extract(Document.metadata_, path)
    parts: list[ColumnElement[bool]] = []
    for group, values in _by_kind(test.values).items():
        if group == "boolean":
            if test.op in ("$eq", "$in"):
                parts.append(kind.in_(["true" if v else "false" for v in values]))
            else:
                parts.append(and_(kind.in_(("true", "false")), _RANGES[test.op](value, int(values[0]))))
            continue
        same = kind == "text" if group == "string" else kind.in_(_SQLITE_NUMBER)
        compared: ColumnElement[bool]
        if test.op == "$in":
            compared = value.in_(values)
        elif test.op == "$eq":
            compared = value == values[0]
        else:
            compared = _RANGES[test.op](value, values[0])
        if test.op in ("$eq", "$in") and not any(_sqlite_ambiguous(v) for v in values):
            parts.append(compared)  # no other JSON type extracts to these values: one JSON parse a row
        else:
            parts.append(and_(compared, same))  # the comparison first: it rejects most rows on its own
    return or_(*parts)


def _sqlite_ambiguous(value: Scalar) -> bool:
    """Whether a value that `json_extract` returns could also come from another JSON type: 1 and 0 (from
    true and false), and text that starts as a list or an object does."""
    if isinstance(value, str):
        return value.startswith(("[", "{"))
    return value in (0, 1)


def _postgres_metadata(test: Test) -> ColumnElement[bool]:
    """PostgreSQL: equality and `$in` as JSONB containment (the GIN index serves it); ranges compare
    `jsonb` with `jsonb` of the same type (never a cast that a stored value could make fail)."""
    document = type_coerce(Document.metadata_, JSONB)
    if test.op == "$exists":
        present: ColumnElement[bool] = document.has_key(test.key)
        return present if test.values[0] else not_(present)
    if test.op in ("$eq", "$in"):
        return or_(*(document.contains({test.key: v}) for v in test.values))
    value = document[test.key]
    bound = test.values[0]
    kind = _kind(bound)
    if kind == "string":
        compared = _RANGES[test.op](value.astext.collate("C"), bound)
    else:
        compared = _RANGES[test.op](value, bindparam(None, bound, type_=JSONB))
    return and_(func.jsonb_typeof(value) == kind, compared)


def _sql(node: FilterNode, *, negated: bool, postgres: bool) -> ColumnElement[bool]:
    if isinstance(node, Not):
        return _sql(node.item, negated=not negated, postgres=postgres)
    if isinstance(node, (AllOf, AnyOf)):
        parts = [_sql(item, negated=negated, postgres=postgres) for item in node.items]
        conjunction = isinstance(node, AllOf) != negated  # De Morgan: NOT (a AND b) = NOT a OR NOT b
        if not parts:
            return true() if conjunction else false()
        return and_(*parts) if conjunction else or_(*parts)
    if node.key in _COLUMNS:
        test = _column_test(node, postgres=postgres)
        return not_(test) if negated else test
    if postgres:
        test = _postgres_metadata(node)
        nullable = node.op not in ("$eq", "$in", "$exists")  # containment and `?` are never NULL
    else:
        test = _sqlite_metadata(node)
        nullable = node.op != "$exists"
    if not negated:
        return test
    return not_(func.coalesce(test, false())) if nullable else not_(test)


def compile_tree(
    tree: FilterNode, *, postgres: bool = False, collection_id: int | None = None
) -> ColumnElement[bool] | None:
    """The SQL condition over `documents` for a parsed filter; None when it keeps every document.

    Given the collection, the condition starts with the facet lookup (db/facets.py), so the JSON condition
    runs only on the documents the facet indexes propose."""
    condition = _sql(tree, negated=False, postgres=postgres)
    if isinstance(condition, True_):
        return None
    superset = facet_superset(tree, collection_id) if collection_id is not None else None
    return condition if superset is None else and_(superset, condition)


def compile_filter(
    spec: dict[str, Any] | None, *, postgres: bool = False, collection_id: int | None = None
) -> ColumnElement[bool] | None:
    """The SQL condition over `documents` for a filter as given (InvalidInput names its first bad part).

    Building the expression costs more than the query it serves when a filter keeps few rows (about
    1 ms for a two-key filter), and services ask the same few filters again and again: the conditions of
    the last 512 distinct filters are kept (SQLAlchemy expressions are immutable, so sharing one is safe)."""
    tree = parse_filter(spec)
    if tree is None:
        return None
    # repr, not the tree itself, is the key: 1, 1.0 and True are equal as Python values, not as filters.
    key = repr(tree)
    found = _COMPILED.get((key, postgres, collection_id))
    if found is None:
        found = compile_tree(tree, postgres=postgres, collection_id=collection_id)
        with _COMPILED_LOCK:
            _COMPILED[(key, postgres, collection_id)] = found
            while len(_COMPILED) > 512:
                _COMPILED.pop(next(iter(_COMPILED)))
    return found


_COMPILED: dict[tuple[str, bool, int | None], ColumnElement[bool] | None] = {}
_COMPILED_LOCK = threading.Lock()
