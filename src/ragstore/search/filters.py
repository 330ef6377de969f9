"""Metadata filters, compiled to SQL so that they select chunk ids inside the database.

A filter is a JSON object. Keys are document fields (`document_id`, `source_uri`, `title`, `mime_type`,
and the dates `created_at`, `updated_at`, compared with ISO 8601 values such as "2024-05-01" or
"2024-05-01T09:00:00+09:00") or metadata keys; a date kept in metadata as an ISO 8601 string compares
correctly as a string when all values share one format. A value is a scalar (equality), a list (any of),
or an object of operators: `$eq`, `$ne`, `$in`, `$gt`, `$gte`, `$lt`, `$lte`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement as CE

from ragstore.db.models import Document
from ragstore.errors import InvalidInput
from ragstore.valid_text import checked_json

__all__ = ["compile_filter"]

_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
_FIELDS: dict[str, Any] = {
    "document_id": Document.id,
    "source_uri": Document.source_uri,
    "title": Document.title,
    "mime_type": Document.mime_type,
}
_DATES: dict[str, Any] = {"created_at": Document.created_at, "updated_at": Document.updated_at}
# Values of one `$in`: each is a bound parameter, and the statement must stay under SQLite's variable limit.
MAX_IN = 1000
_OPS = ("$eq", "$ne", "$in", "$gt", "$gte", "$lt", "$lte")


def _as_datetime(key: str, value: Any) -> datetime:
    """An ISO 8601 date or time; one without a zone is UTC."""
    if not isinstance(value, str):
        raise InvalidInput(f"filter {key!r}: give an ISO 8601 date or time, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"filter {key!r}: {value!r} is not an ISO 8601 date or time") from exc
    # In UTC: SQLite stores the times as UTC text, which a bound time in another zone would not match.
    return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _metadata_column(key: str, sample: Any) -> Any:
    element = Document.metadata_[key]
    if isinstance(sample, bool):
        return element.as_boolean()
    if isinstance(sample, int):
        return element.as_integer()
    if isinstance(sample, float):
        return element.as_float()
    return element.as_string()


def _check_scalar(key: str, value: Any) -> None:
    if not isinstance(value, (str, int, float, bool)):
        raise InvalidInput(f"filter {key!r}: values must be strings, numbers or booleans, got {type(value).__name__}")
    # Compared in SQL: an integer past 64 bits overflows the driver (a 500), a surrogate or NUL the encoder.
    checked_json(value, f"filter.{key}")


def _contains(key: str, value: Any) -> ColumnElement[bool]:
    """PostgreSQL: `metadata @> {key: value}`, which the GIN index on documents.metadata serves."""
    return type_coerce(Document.metadata_, JSONB).contains({key: value})


def _condition(key: str, value: Any, *, postgres: bool) -> ColumnElement[bool]:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidInput(f"filter key {key!r} is not a valid field or metadata key")
    ops: dict[str, Any]
    if isinstance(value, dict):
        ops = value
        unknown = [op for op in ops if op not in _OPS]
        if unknown or not ops:
            raise InvalidInput(f"filter {key!r}: unknown operator(s) {unknown or '{}'}; supported: {', '.join(_OPS)}")
    elif isinstance(value, list):
        ops = {"$in": value}
    else:
        ops = {"$eq": value}
    parts: list[ColumnElement[bool]] = []
    for op, operand in ops.items():
        values = operand if op == "$in" else [operand]
        if op == "$in" and (not isinstance(operand, list) or not operand):
            raise InvalidInput(f"filter {key!r}: $in needs a non-empty list")
        if op == "$in" and len(operand) > MAX_IN:
            raise InvalidInput(f"filter {key!r}: $in takes at most {MAX_IN} values, got {len(operand)}")
        for v in values:
            _check_scalar(key, v)
        if key in _DATES:
            values = [_as_datetime(key, v) for v in values]
            operand = values if op == "$in" else values[0]
        column = _FIELDS.get(key)
        if column is None:
            column = _DATES.get(key)
        if column is None and postgres and op in ("$eq", "$in"):
            parts.append(or_(*(_contains(key, v) for v in values)))
            continue
        if column is None:
            column = _metadata_column(key, values[0])
        if op == "$in":
            parts.append(column.in_(values))
        elif op == "$eq":
            parts.append(column == operand)
        elif op == "$ne":
            parts.append(or_(column != operand, column.is_(None)))
        elif op == "$gt":
            parts.append(column > operand)
        elif op == "$gte":
            parts.append(column >= operand)
        elif op == "$lt":
            parts.append(column < operand)
        else:
            parts.append(column <= operand)
    return and_(*parts)


def compile_filter(spec: dict[str, Any] | None, *, postgres: bool = False) -> CE[bool] | None:
    if not spec:
        return None
    if not isinstance(spec, dict):
        raise InvalidInput(f"filter must be a JSON object, got {type(spec).__name__}")
    return and_(*(_condition(k, v, postgres=postgres) for k, v in spec.items()))
