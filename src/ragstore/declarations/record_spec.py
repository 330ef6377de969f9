"""The declaration of an application record type: the one place a record's shape is written down.

Everything else (the SQLAlchemy model, the pydantic schemas, the CRUD service, the HTTP routes and the CLI
commands) is derived from a `RecordType`, so thirteen record types cost thirteen declarations, not thirteen
copies of CRUD code. A field says its type, its bounds, whether a listing may filter or sort on it, and
whether it is a secret (sealed in the vault, never returned: the row only knows `has_<name>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ragstore.roles import Role

__all__ = ["MAX_JSON_BYTES", "Field", "Kind", "Parent", "RecordType"]

Kind = Literal["str", "text", "int", "float", "bool", "json", "datetime"]
MAX_JSON_BYTES = 256 * 1024  # one record's JSON document (a flow, a result): large, never a corpus
MAX_TEXT_CHARS = 64 * 1024


@dataclass(frozen=True, slots=True)
class Field:
    """One column of a record type, as the caller sees it.

    `max_len` bounds a string (the column's width for `str`), `ge`/`le` a number; `choices` becomes a CHECK
    constraint and a `Literal` in the schemas. `required`: a create must give it (else `default`).
    `filter`: a listing may name it in `filter` (datetimes and numbers also as `<name>__gte` / `<name>__lt`).
    `sort`: a listing may order by it. `secret`: sealed in the vault (scope `<secret_scope>:<id>`), never read
    back. `readonly`: kept by the store (a flow's current version number), shown but never written by callers.
    """

    name: str
    kind: Kind
    max_len: int | None = None
    ge: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False
    nullable: bool = False
    default: object = None
    filter: bool = False
    sort: bool = False
    unique: bool = False
    secret: bool = False
    readonly: bool = False
    description: str = ""

    @property
    def bound(self) -> int:
        """A string's length bound (text and secrets have one too, so no input is unbounded)."""
        if self.max_len is not None:
            return self.max_len
        return MAX_TEXT_CHARS


@dataclass(frozen=True, slots=True)
class Parent:
    """A foreign key to another record type, deleted with it (ON DELETE CASCADE)."""

    field: str  # e.g. "workflow_id"
    table: str  # e.g. "workflows"
    filter: bool = True


@dataclass(frozen=True, slots=True)
class RecordType:
    """A record type: its table (also its URL segment `/v1/<table>` and, with `-` for `_`, its CLI name).

    Roles: reads need `read_role`, creates and updates `write_role`, deletes `delete_role` (each on every
    collection, `*`). `writable=False`: a history kept by the store itself (flow versions), read-only to
    callers. `versioned_field`: on create and on every update that changes it, the store appends a row to
    `history_table` (see records/history.py).
    """

    table: str
    label: str
    fields: tuple[Field, ...]
    parent: Parent | None = None
    read_role: Role = Role.READ
    write_role: Role = Role.WRITE
    delete_role: Role = Role.ADMIN
    writable: bool = True
    description: str = ""
    indexes: tuple[tuple[str, ...], ...] = ()
    secret_scope: str = ""  # the vault scope kind of its secrets (`mcp` -> `mcp:<id>`, security/vault.py)

    @property
    def cli_name(self) -> str:
        return self.table.replace("_", "-")

    @property
    def writable_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.readonly)

    @property
    def stored(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.secret)

    @property
    def secrets(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.secret)

    def field_named(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def filterable(self) -> dict[str, Kind]:
        """Filter name -> kind: the flagged fields, the parent's key, and `created_at` ranges for every type."""
        names: dict[str, Kind] = {f.name: f.kind for f in self.stored if f.filter}
        if self.parent is not None and self.parent.filter:
            names[self.parent.field] = "int"
        names["created_at"] = "datetime"
        return names

    @property
    def sortable(self) -> set[str]:
        return {f.name for f in self.stored if f.sort} | {"id", "created_at", "updated_at"}
