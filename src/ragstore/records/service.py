"""`store.records`: the one CRUD service every record type shares (declarations/record_types.py declares them).

Rules kept here once for every type:
- permissions: reads need the type's read role, creates and updates its write role, deletes its delete role
  (admin), each on every collection; the principal is the caller of `current_call()` (every face alike);
- validation through the derived schemas: a bad field is InvalidInput (422) naming the field, an unknown
  filter or sort field too; a missing parent is InvalidInput naming the parent's key;
- optimistic concurrency: an update names the version it read; `UPDATE ... WHERE version = :read` changes
  nothing when another writer got there first, which is a Conflict (409), a missing row NotFound (404);
- a delete writes `record.delete` to the audit log in its own transaction (with the type and id);
- secrets (MCP credentials) go to the vault in the row's transaction and never come back out of a read;
- listings are bounded: at most MAX_LIMIT rows, an offset up to MAX_OFFSET, or a cursor (the last id) when
  sorted by id, which costs the same on page 1000 as on page 1.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import Select, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.engine import Database
from ragstore.db.record_models import model_of
from ragstore.declarations.record_spec import MAX_JSON_BYTES, RecordType
from ragstore.declarations.record_types import RECORD_TYPES, by_table
from ragstore.errors import Conflict, Forbidden, InvalidInput, NotFound
from ragstore.records import stats
from ragstore.records.schemas import AiRequestSummary, schemas_of
from ragstore.schemas.core import UtcTime
from ragstore.security.audit import AuditTrail
from ragstore.security.context import current_call
from ragstore.security.principal import Role
from ragstore.security.vault import SecretVault, scope_of
from ragstore.valid_text import ascii_digits, checked_json, checked_text

__all__ = ["DEFAULT_LIMIT", "MAX_FILTER_CHARS", "MAX_LIMIT", "MAX_OFFSET", "RecordsService", "validation_message"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_OFFSET = 10_000
MAX_FILTER_CHARS = 4000
RANGE_SUFFIXES = {"__gte": "ge", "__lt": "lt"}
_DATETIME: TypeAdapter[datetime] = TypeAdapter(UtcTime)


def validation_message(exc: ValidationError, prefix: str = "") -> str:
    """One line naming the first bad field: `name: String should have at most 200 characters`."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "body"
    return f"{prefix}{where}: {first.get('msg', 'invalid')}"


class RecordsService:
    """Create, get, list, update and delete of every declared record type, plus the few type-specific reads
    (a flow's past version, a workflow's execution history, the AI request summary, cache sampling)."""

    def __init__(
        self,
        db: Database,
        audit_trail: AuditTrail,
        vault: SecretVault,
        cache_stats: Callable[[], Mapping[str, Mapping[str, int]]],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.audit_trail = audit_trail
        self.vault = vault
        self.cache_stats = cache_stats
        self.clock = clock

    # -- the declarations ----------------------------------------------------------------------------------

    @staticmethod
    def types() -> tuple[RecordType, ...]:
        return RECORD_TYPES

    @staticmethod
    def spec(table: str) -> RecordType:
        spec = by_table(table.replace("-", "_"))
        if spec is None:
            names = ", ".join(s.table for s in RECORD_TYPES)
            raise NotFound(f"no record type {table!r}; the types are: {names}")
        return spec

    @staticmethod
    def _allow(role: Role, spec: RecordType, action: str) -> None:
        if not current_call().principal.allows(role):
            raise Forbidden(f"{action} {spec.table} needs the {role.value} role; the caller does not hold it")

    # -- CRUD --------------------------------------------------------------------------------------------

    def create(self, table: str, data: Mapping[str, Any] | BaseModel) -> BaseModel:
        spec = self.spec(table)
        if not spec.writable:
            raise Forbidden(f"{spec.table} is kept by the store itself; it cannot be written directly")
        self._allow(spec.write_role, spec, "creating")
        schemas = schemas_of(spec)
        values = _validated(schemas.create, data).model_dump()
        _check_json_sizes(spec, values)
        secrets = {f.name: values.pop(f.name, None) for f in spec.secrets}
        model = model_of(spec)
        now = self.clock.now()

        def unit(s: Session) -> BaseModel:
            self._check_parent(s, spec, values)
            row = model(**values, version=1, created_at=now, updated_at=now)
            s.add(row)
            s.flush()
            self._store_secrets(s, spec, row, secrets)
            self._after_write(s, spec, row, definition_changed=True)
            s.flush()
            return schemas.info.model_validate(row)

        return self._write(spec, unit, values)

    def get(self, table: str, record_id: int) -> BaseModel:
        spec = self.spec(table)
        self._allow(spec.read_role, spec, "reading")
        with self.db.read() as s:
            row = s.get(model_of(spec), record_id)
            if row is None:
                raise NotFound(f"no {spec.label} with id {record_id}")
            return schemas_of(spec).info.model_validate(row)

    def list(
        self,
        table: str,
        *,
        filters: Mapping[str, Any] | str | None = None,
        sort: str | None = None,
        limit: int = DEFAULT_LIMIT,
        offset: int | None = None,
        cursor: str | None = None,
    ) -> BaseModel:
        """One page of records: `filters` {field: value, or field__gte / field__lt: bound}, `sort` a sortable
        field (`-field` descending); `cursor` (the `next_cursor` of the previous page) only with the id order."""
        spec = self.spec(table)
        self._allow(spec.read_role, spec, "listing")
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit: must be between 1 and {MAX_LIMIT}")
        if offset is not None and not 0 <= offset <= MAX_OFFSET:
            raise InvalidInput(f"offset: must be between 0 and {MAX_OFFSET}; use the cursor to go further")
        if offset is not None and cursor is not None:
            raise InvalidInput("cursor: give a cursor or an offset, not both")
        model = model_of(spec)
        query = _filtered(select(model), spec, model, _parsed_filters(filters))
        field, descending = _sort_of(spec, sort)
        if cursor is not None:
            if field != "id":
                raise InvalidInput("cursor: a cursor pages in id order only; use offset with another sort")
            after = _cursor_id(cursor)
            query = query.where(model.id < after if descending else model.id > after)
        column = getattr(model, field)
        order = [column.desc() if descending else column.asc()]
        if field != "id":
            order.append(model.id.desc() if descending else model.id.asc())
        query = query.order_by(*order).offset(offset or 0).limit(limit + 1)
        schemas = schemas_of(spec)
        with self.db.read() as s:
            rows = list(s.scalars(query))
            items = [schemas.info.model_validate(row) for row in rows[:limit]]
        more = len(rows) > limit
        next_cursor = str(rows[limit - 1].id) if more and field == "id" else None
        next_offset = (offset or 0) + limit if more and (offset or 0) + limit <= MAX_OFFSET else None
        return schemas.page(items=items, next_cursor=next_cursor, next_offset=next_offset)

    def update(self, table: str, record_id: int, data: Mapping[str, Any] | BaseModel) -> BaseModel:
        spec = self.spec(table)
        if not spec.writable:
            raise Forbidden(f"{spec.table} is kept by the store itself; it cannot be written directly")
        self._allow(spec.write_role, spec, "updating")
        schemas = schemas_of(spec)
        changes = _validated(schemas.update, data).model_dump(exclude_unset=True)
        read_version = int(changes.pop("version"))
        _check_json_sizes(spec, changes)
        secrets = {f.name: changes.pop(f.name) for f in spec.secrets if f.name in changes}
        for name, value in changes.items():
            f = spec.field_named(name)
            if value is None and f is not None and not f.nullable:
                raise InvalidInput(f"{name}: may not be null")
        model = model_of(spec)
        definition_changed = "definition" in changes

        def unit(s: Session) -> BaseModel:
            values: dict[str, Any] = {**changes, "version": read_version + 1, "updated_at": self.clock.now()}
            if spec.table == "flows" and definition_changed:
                values["flow_version"] = model.flow_version + 1
            done = s.execute(update(model).where(model.id == record_id, model.version == read_version).values(values))
            if not getattr(done, "rowcount", 0):
                current = s.get(model, record_id)
                if current is None:
                    raise NotFound(f"no {spec.label} with id {record_id}")
                raise Conflict(
                    f"{spec.label} {record_id} is at version {current.version}, not {read_version}: "
                    "it changed since it was read; read it again and retry"
                )
            row = s.execute(select(model).where(model.id == record_id).execution_options(populate_existing=True))
            found = row.scalar_one()
            if secrets:
                self._store_secrets(s, spec, found, secrets)
            self._after_write(s, spec, found, definition_changed=definition_changed)
            s.flush()
            return schemas.info.model_validate(found)

        return self._write(spec, unit, changes)

    def delete(self, table: str, record_id: int) -> None:
        """Delete one record (its children go with it by ON DELETE CASCADE), audited as `record.delete`."""
        spec = self.spec(table)
        if not spec.writable:
            raise Forbidden(f"{spec.table} is kept by the store itself; delete its parent instead")
        self._allow(spec.delete_role, spec, "deleting")
        model = model_of(spec)

        def unit(s: Session) -> None:
            row = s.get(model, record_id)
            if row is None:
                raise NotFound(f"no {spec.label} with id {record_id}")
            if spec.secrets:
                self.vault.delete_scope(scope_of(spec.secret_scope or spec.table, record_id), session=s)
            s.delete(row)
            s.flush()
            self.audit_trail.append(
                s, "record.delete", target=f"{spec.table}:{record_id}", details={"type": spec.table, "id": record_id}
            )

        self.db.write(unit)

    # -- type-specific reads and writes ------------------------------------------------------------------

    def flow_version(self, flow_id: int, flow_version: int) -> BaseModel:
        """A flow as it was at one version (flow_versions keeps every definition it had)."""
        spec = self.spec("flow_versions")
        self._allow(spec.read_role, spec, "reading")
        model = model_of(spec)
        with self.db.read() as s:
            row = s.scalars(
                select(model).where(model.flow_id == flow_id, model.flow_version == flow_version)
            ).one_or_none()
            if row is None:
                raise NotFound(f"flow {flow_id} has no version {flow_version}")
            return schemas_of(spec).info.model_validate(row)

    def executions(
        self,
        workflow_id: int,
        *,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> BaseModel:
        """A workflow's execution history, newest first, by status and start time ([since, until))."""
        self.get("workflows", workflow_id)  # 404 for a workflow that does not exist
        filters: dict[str, Any] = {"workflow_id": workflow_id}
        if status is not None:
            filters["status"] = status
        if since is not None:
            filters["started_at__gte"] = since
        if until is not None:
            filters["started_at__lt"] = until
        return self.list("workflow_executions", filters=filters, sort="-id", limit=limit, cursor=cursor)

    def ai_summary(self, days: int = 7) -> AiRequestSummary:
        """AI requests per model and day over the last `days` (ai_request_stats with embedding_usage)."""
        spec = self.spec("ai_request_stats")
        self._allow(spec.read_role, spec, "reading")
        if not 1 <= days <= stats.MAX_SUMMARY_DAYS:
            raise InvalidInput(f"days: must be between 1 and {stats.MAX_SUMMARY_DAYS}")
        return stats.summarise(self.db, model_of(spec), since=self.clock.now() - stats.days_delta(days), days=days)

    def sample_caches(self) -> builtins.list[BaseModel]:
        """One cache_metadata row per cache layer with its hits and misses now (the scheduler calls this)."""
        spec = self.spec("cache_metadata")
        self._allow(spec.write_role, spec, "sampling")
        model = model_of(spec)
        now = self.clock.now()
        samples = stats.cache_samples(self.cache_stats())

        def unit(s: Session) -> builtins.list[BaseModel]:
            rows = [model(**sample, version=1, created_at=now, updated_at=now) for sample in samples]
            s.add_all(rows)
            s.flush()
            return [schemas_of(spec).info.model_validate(row) for row in rows]

        return self.db.write(unit)

    # -- helpers -----------------------------------------------------------------------------------------

    def _write(self, spec: RecordType, unit: Callable[[Session], BaseModel], values: Mapping[str, Any]) -> BaseModel:
        try:
            return self.db.write(unit)
        except IntegrityError as exc:
            unique = [f.name for f in spec.stored if f.unique and f.name in values]
            if unique and "unique" in str(exc.orig).lower():
                shown = ", ".join(f"{name}={values[name]!r}" for name in unique)
                raise Conflict(f"a {spec.label} with {shown} already exists") from exc
            raise InvalidInput(f"{spec.table}: the values break a constraint of the table") from exc

    @staticmethod
    def _check_parent(s: Session, spec: RecordType, values: Mapping[str, Any]) -> None:
        if spec.parent is None:
            return
        parent = by_table(spec.parent.table)
        assert parent is not None
        if s.get(model_of(parent), values[spec.parent.field]) is None:
            raise InvalidInput(f"{spec.parent.field}: no {parent.label} with id {values[spec.parent.field]}")

    def _store_secrets(self, s: Session, spec: RecordType, row: Any, secrets: Mapping[str, str | None]) -> None:
        scope = scope_of(spec.secret_scope or spec.table, row.id)
        for name, value in secrets.items():
            if value:
                self.vault.put(scope, name, value, session=s)
                setattr(row, f"has_{name}", True)
            elif getattr(row, f"has_{name}", False):  # "" or null on update: forget the secret
                self.vault.delete(scope, name, session=s)
                setattr(row, f"has_{name}", False)

    @staticmethod
    def _after_write(s: Session, spec: RecordType, row: Any, *, definition_changed: bool) -> None:
        """A flow keeps every definition it had: each create or change of `definition` appends a version."""
        if spec.table != "flows" or not definition_changed:
            return
        versions = by_table("flow_versions")
        assert versions is not None
        now = row.updated_at
        s.add(
            model_of(versions)(
                flow_id=row.id,
                flow_version=row.flow_version,
                definition=row.definition,
                version=1,
                created_at=now,
                updated_at=now,
            )
        )


def _validated(schema: type[BaseModel], data: Mapping[str, Any] | BaseModel) -> BaseModel:
    if isinstance(data, schema):
        return data
    raw = data.model_dump(exclude_unset=True) if isinstance(data, BaseModel) else data
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(validation_message(exc)) from exc


def _check_json_sizes(spec: RecordType, values: Mapping[str, Any]) -> None:
    """Every value storable on both dialects (no NUL, no lone surrogate, numbers that fit; PostgreSQL refuses
    them with a 500 otherwise) and every JSON document within MAX_JSON_BYTES."""
    for f in spec.fields:
        value = values.get(f.name)
        if isinstance(value, str):
            checked_text(value, f.name)
    for f in spec.stored:
        if f.kind == "json" and values.get(f.name) is not None:
            checked_json(values[f.name], f.name)
            size = len(json.dumps(values[f.name], ensure_ascii=False, default=str).encode())
            if size > MAX_JSON_BYTES:
                raise InvalidInput(f"{f.name}: {size} bytes of JSON; at most {MAX_JSON_BYTES}")


def _parsed_filters(filters: Mapping[str, Any] | str | None) -> Mapping[str, Any]:
    if filters is None or filters == "":
        return {}
    if isinstance(filters, str):
        if len(filters) > MAX_FILTER_CHARS:
            raise InvalidInput(f"filter: at most {MAX_FILTER_CHARS} characters")
        try:
            filters = json.loads(filters)
        except ValueError as exc:
            raise InvalidInput(f"filter: not JSON ({exc})") from exc
    if not isinstance(filters, Mapping):
        raise InvalidInput('filter: must be a JSON object, e.g. {"status": "failed"}')
    return filters


def _filtered(query: Select[Any], spec: RecordType, model: Any, filters: Mapping[str, Any]) -> Select[Any]:
    allowed = spec.filterable
    for key, value in filters.items():
        name, op = str(key), "eq"
        for suffix, range_op in RANGE_SUFFIXES.items():
            if name.endswith(suffix):
                name, op = name[: -len(suffix)], range_op
        kind = allowed.get(name)
        if kind is None:
            raise InvalidInput(f"filter: unknown field {key!r}; filter on: {', '.join(sorted(allowed))}")
        if op != "eq" and kind not in ("int", "float", "datetime"):
            raise InvalidInput(f"filter: {name} takes no range (only numbers and times do)")
        column = getattr(model, name)
        bound = _filter_value(key, kind, value)
        query = query.where(column == bound if op == "eq" else column >= bound if op == "ge" else column < bound)
    return query


def _filter_value(key: str, kind: str, value: Any) -> Any:
    ok = {
        "str": isinstance(value, str) and len(value) <= 2000,
        "text": isinstance(value, str) and len(value) <= 2000,
        "int": isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63,
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
    }
    if kind == "datetime":
        try:
            return _DATETIME.validate_python(value)
        except ValidationError as exc:
            raise InvalidInput(f"filter: {key} must be an ISO 8601 time") from exc
    if not ok.get(kind, False):
        raise InvalidInput(f"filter: {key} must be a {kind}, not {value!r:.60}")
    if isinstance(value, str):
        checked_text(value, f"filter: {key}")
    return value


def _sort_of(spec: RecordType, sort: str | None) -> tuple[str, bool]:
    if not sort:
        return "id", False
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    if name not in spec.sortable:
        raise InvalidInput(f"sort: unknown field {name!r}; sort by: {', '.join(sorted(spec.sortable))}")
    return name, descending


def _cursor_id(cursor: str) -> int:
    if not ascii_digits(cursor) or len(cursor) > 19:
        raise InvalidInput("cursor: not a cursor this listing gave")
    return int(cursor)
