"""Document facets: metadata values kept in an indexed side table, so that a filter never scans JSON.

A metadata filter is exact only as the JSON condition of db/filters.py, but that condition reads and parses
every document of the collection (SQLite has no index on JSON; PostgreSQL's GIN index serves equality only).
With 20,000 documents that scan alone took 35 ms for a filter keeping 20 of them (bench/filtered_search.py).
So every scalar value of a document's metadata is also a row of `document_facets`, indexed by (collection,
key, kind, value), and a filter is compiled twice: to a facet lookup that selects a *superset* of the
documents that pass, and to the exact JSON condition, which then runs only on that superset.

Only a superset is needed, which keeps the side table simple and its semantics out of harm's way:

- strings keep their first 64 characters (a prefix orders no later than its string, so `s >= v` implies
  `prefix(s) >= prefix(v)`), numbers a double (rounding is monotonic, so ranges become non-strict);
- a negated test (`$not`, `$ne`, `$nin`, `$exists: false`) has no useful superset: such a part adds no facet
  lookup, and a filter made only of them falls back to the JSON scan;
- document fields (`source_uri`, dates, ...) are columns of `documents` and need no facet.

The rows are written with their document by ingest (documents are never edited in place: a change is a new
document), and leave with it through the foreign key's cascade.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, CompoundSelect, Select, Table, and_, false, insert, intersect, or_, select, union
from sqlalchemy.orm import Session

from ragstore.db.bulk import insert_many
from ragstore.db.facet_models import DocumentFacet
from ragstore.db.filter_spec import (
    DATE_FIELDS,
    INT_FIELDS,
    KEY,
    STRING_FIELDS,
    AllOf,
    AnyOf,
    FilterNode,
    Not,
    Scalar,
    Test,
)
from ragstore.db.models import Document

__all__ = ["PREFIX", "facet_rows", "facet_superset", "insert_facets"]

PREFIX = 64  # characters of a string value kept in the facet


def _number(value: int | float) -> float:
    """A double for any JSON number: an integer too large for one goes to infinity, keeping the order."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _facet(key: str, value: Any) -> tuple[str, str, float | None, str | None]:
    if isinstance(value, bool):
        return key, "b", float(value), None
    if isinstance(value, (int, float)):
        return key, "n", _number(value), None
    if isinstance(value, str):
        return key, "s", None, value[:PREFIX]
    return key, "x", None, None


def facet_rows(documents: Iterable[tuple[int, int, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The facet rows of (document id, collection id, metadata) triples; keys a filter cannot name (db/
    filter_spec.KEY) get none."""
    rows: list[dict[str, Any]] = []
    for document_id, collection_id, metadata in documents:
        for key, value in metadata.items():
            if not KEY.fullmatch(key):
                continue
            key, kind, num, text = _facet(key, value)
            if kind == "n" and isinstance(num, float) and math.isnan(num):
                kind, num = "x", None  # no order: never matched by a comparison
            rows.append(
                {
                    "document_id": document_id,
                    "collection_id": collection_id,
                    "key": key,
                    "kind": kind,
                    "num": num,
                    "text": text,
                }
            )
    return rows


def insert_facets(session: Session, documents: Iterable[tuple[int, int, Mapping[str, Any]]]) -> None:
    """Write the facet rows of new documents, in the caller's transaction (one executemany per 5,000)."""
    insert_many(session, _INSERT_FACETS, facet_rows(documents))


_FACETS = cast(Table, DocumentFacet.__table__)
_INSERT_FACETS = insert(_FACETS)
_Ids = Select[Any] | CompoundSelect[Any]
_DOCUMENT_FIELDS = INT_FIELDS | STRING_FIELDS | DATE_FIELDS
_WIDENED = {"$gt": "$gte", "$lt": "$lte", "$gte": "$gte", "$lte": "$lte"}


def _value_part(op: str, values: tuple[Scalar, ...]) -> ColumnElement[bool] | None:
    """The facet rows whose value may satisfy the test (a superset), or None when no value can."""
    f = DocumentFacet
    if op in ("$eq", "$in"):
        parts: list[ColumnElement[bool]] = []
        strings = sorted({v[:PREFIX] for v in values if isinstance(v, str)})
        numbers = sorted({_number(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)})
        booleans = sorted({float(v) for v in values if isinstance(v, bool)})
        if strings:
            parts.append(and_(f.kind == "s", f.text.in_(strings)))
        if numbers:
            parts.append(and_(f.kind == "n", f.num.in_(numbers)))
        if booleans:
            parts.append(and_(f.kind == "b", f.num.in_(booleans)))
        return or_(*parts) if parts else None
    bound = values[0]
    widened = _WIDENED[op]
    column: Any
    value: Any
    if isinstance(bound, str):
        column, kind, value = f.text, "s", bound[:PREFIX]
    elif isinstance(bound, bool):
        column, kind, value = f.num, "b", float(bound)
    else:
        column, kind, value = f.num, "n", _number(bound)
    compared = column >= value if widened == "$gte" else column <= value
    return and_(f.kind == kind, compared)


def _ranges_by_key(items: Sequence[FilterNode]) -> tuple[list[FilterNode], dict[tuple[str, str], list[Test]]]:
    """Range tests of one metadata key and value kind under one AND (`{"n": {"$gte": 2, "$lt": 10}}`),
    grouped: one index range scan each, not one per bound intersected."""
    rest: list[FilterNode] = []
    ranges: dict[tuple[str, str], list[Test]] = {}
    for item in items:
        if isinstance(item, Test) and item.op in _WIDENED and item.key not in _DOCUMENT_FIELDS:
            ranges.setdefault((item.key, _facet(item.key, item.values[0])[1]), []).append(item)
        else:
            rest.append(item)
    return rest, ranges


def _range_superset(key: tuple[str, str], tests: list[Test], collection_id: int) -> _Ids:
    f = DocumentFacet
    bounds = [_value_part(t.op, t.values) for t in tests]
    return select(f.document_id).where(
        f.collection_id == collection_id, f.key == key[0], *[b for b in bounds if b is not None]
    )


def _test_superset(test: Test, collection_id: int) -> _Ids | None:
    if test.key in _DOCUMENT_FIELDS:
        return None  # a column of documents: the exact condition is as cheap
    f = DocumentFacet
    if test.op == "$exists":
        if not test.values[0]:
            return None
        return select(f.document_id).where(f.collection_id == collection_id, f.key == test.key)
    part = _value_part(test.op, test.values)
    return select(f.document_id).where(
        f.collection_id == collection_id, f.key == test.key, false() if part is None else part
    )


def _simple(ids: _Ids) -> Select[Any]:
    """A compound select as a plain one over its subquery: SQLite takes no parenthesised compound inside
    another (`a INTERSECT (b UNION c)`)."""
    if isinstance(ids, CompoundSelect):
        inner = ids.subquery()
        return select(inner.c.document_id)
    return ids


def _superset(tree: FilterNode, collection_id: int) -> _Ids | None:
    if isinstance(tree, Not):
        return None
    if isinstance(tree, AllOf):
        items, ranges = _ranges_by_key(tree.items)
        parts = [_range_superset(key, tests, collection_id) for key, tests in ranges.items()]
        parts += [p for p in (_superset(item, collection_id) for item in items) if p is not None]
        if len(parts) > 1:
            # Intersected among the facet rows: reading each document of the larger sets to test the other
            # would cost a row read per document (two 10 % keys at 100,000 chunks: 4,000 reads).
            return intersect(*map(_simple, parts))
        return parts[0] if parts else None
    if isinstance(tree, AnyOf):
        alternatives = [_superset(item, collection_id) for item in tree.items]
        if not alternatives or any(p is None for p in alternatives):
            return None
        found = [p for p in alternatives if p is not None]
        return union(*map(_simple, found)) if len(found) > 1 else found[0]
    return _test_superset(tree, collection_id)


def facet_superset(tree: FilterNode, collection_id: int) -> ColumnElement[bool] | None:
    """A condition on `documents` true for every document of the collection that passes `tree` (and for
    few others), answered from the facet indexes; None when the filter gives no positive test to look up."""
    ids = _superset(tree, collection_id)
    return None if ids is None else Document.id.in_(ids)
