"""The SQLAlchemy models of the record types, derived from their declarations (on the shared `Base`).

Every record table has the same frame: a BigId `id`, the parent's key (ON DELETE CASCADE) when there is
one, the declared columns (a secret field becomes only `has_<name>`: its value lives in `encrypted_secrets`),
`version` for optimistic concurrency, and `created_at` / `updated_at`. Migration 0013 writes the same tables
out by hand; tests/test_migrations.py compares the two on both dialects.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.orm import mapped_column

from ragstore.db.models import Base, BigId, JsonDoc, utcnow
from ragstore.declarations.record_spec import Field, RecordType
from ragstore.declarations.record_types import RECORD_TYPES

__all__ = ["MODELS", "model_of"]

INT32_MAX = 2**31 - 1


def column_type(f: Field) -> Any:
    """The SQL type of a declared field (the migration spells the same types)."""
    if f.kind == "str":
        return String(f.bound)
    if f.kind == "text":
        return Text()
    if f.kind == "int":
        return BigInteger() if f.le is not None and f.le > INT32_MAX else Integer()
    if f.kind == "float":
        return Float()
    if f.kind == "bool":
        return Boolean()
    if f.kind == "json":
        return JsonDoc
    return DateTime(timezone=True)


def _columns(spec: RecordType) -> dict[str, Any]:
    attrs: dict[str, Any] = {"id": mapped_column(BigId, primary_key=True)}
    if spec.parent is not None:
        attrs[spec.parent.field] = mapped_column(
            ForeignKey(f"{spec.parent.table}.id", ondelete="CASCADE"), nullable=False
        )
    for f in spec.fields:
        if f.secret:
            attrs[f"has_{f.name}"] = mapped_column(Boolean, default=False, nullable=False)
            continue
        attrs[f.name] = mapped_column(column_type(f), nullable=f.nullable, unique=f.unique or None, default=f.default)
    attrs["version"] = mapped_column(Integer, default=1, server_default="1", nullable=False)
    attrs["created_at"] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), nullable=False
    )
    attrs["updated_at"] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), nullable=False
    )
    return attrs


def table_args(spec: RecordType) -> tuple[Any, ...]:
    args: list[Any] = []
    for f in spec.stored:
        if f.choices:
            allowed = ", ".join(f"'{c}'" for c in f.choices)
            args.append(CheckConstraint(f"{f.name} IN ({allowed})", name=f"{f.name}_known"))
    if spec.parent is not None and not any(ix[0] == spec.parent.field for ix in spec.indexes):
        args.append(Index(f"ix_{spec.table}_{spec.parent.field}", spec.parent.field))
    for columns in spec.indexes:
        args.append(Index(f"ix_{spec.table}_{'_'.join(columns)}", *columns))
    args.append(Index(f"ix_{spec.table}_created_at", "created_at"))
    return (*args, {"sqlite_autoincrement": True})


def _model(spec: RecordType) -> type[Any]:
    name = "".join(part.title() for part in spec.table.split("_")) + "Record"
    attrs = {"__tablename__": spec.table, "__table_args__": table_args(spec), "__doc__": spec.description}
    attrs.update(_columns(spec))
    return type(name, (Base,), attrs)


MODELS: dict[str, type[Any]] = {spec.table: _model(spec) for spec in RECORD_TYPES}


def model_of(spec: RecordType) -> type[Any]:
    return MODELS[spec.table]
