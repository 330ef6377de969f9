"""The pydantic schemas of the record types, derived from their declarations.

For each type: `Create` (the writable fields; unknown fields refused), `Update` (every writable field
optional — only those sent change — plus the required `version` the caller read), `Info` (what every read
returns: secrets only as `has_<name>`) and `Page` (a bounded listing with the cursor or offset of the next).
The summary of AI requests per model and day has its own fixed schema here too.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, create_model
from pydantic import Field as PydanticField

from ragstore.declarations.record_spec import Field, RecordType
from ragstore.declarations.record_types import RECORD_TYPES
from ragstore.schemas.core import UtcTime

__all__ = ["AiRequestDay", "AiRequestSummary", "RecordSchemas", "schemas_of"]

JsonValue = dict[str, Any] | list[Any]


def python_type(f: Field, *, for_input: bool) -> Any:
    """The annotated Python type of a field (bounds as constraints, choices as a Literal)."""
    base: Any
    if f.choices:
        base = Literal[f.choices]
    elif f.kind in ("str", "text"):
        base = Annotated[str, StringConstraints(min_length=1 if f.required else 0, max_length=f.bound)]
    elif f.kind == "int":
        base = Annotated[int, PydanticField(ge=f.ge, le=f.le)]
    elif f.kind == "float":
        base = Annotated[float, PydanticField(ge=f.ge, le=f.le, allow_inf_nan=False)]
    elif f.kind == "bool":
        base = bool
    elif f.kind == "json":
        base = JsonValue
    else:
        base = UtcTime  # stored in UTC; SQLite hands it back naive, this names the zone again
    if not for_input:
        base = {"str": str, "text": str, "int": int, "float": float}.get(f.kind, base) if not f.choices else str
    return base | None if f.nullable else base


class RecordSchemas:
    """The four schemas of one record type."""

    def __init__(self, spec: RecordType) -> None:
        stem = "".join(part.title() for part in spec.table.split("_"))
        forbid = ConfigDict(extra="forbid")
        create: dict[str, Any] = {}
        update: dict[str, Any] = {}
        info: dict[str, Any] = {"id": (int, ...)}
        if spec.parent is not None:
            parent_id = Annotated[int, PydanticField(ge=1, le=2**63 - 1)]
            create[spec.parent.field] = (parent_id, ...)
            info[spec.parent.field] = (int, ...)
        for f in spec.fields:
            typ = python_type(f, for_input=True)
            described = PydanticField(description=f.description or None)
            if not f.readonly:
                if f.secret:
                    create[f.name] = (typ | None, PydanticField(None, description=f.description or None))
                elif f.required:
                    create[f.name] = (typ, PydanticField(..., description=f.description or None))
                else:
                    default = f.default if f.default is not None or f.nullable else _zero(f)
                    create[f.name] = (typ, PydanticField(default=default, description=f.description or None))
                update[f.name] = (typ | None, PydanticField(None, description=described.description))
            if f.secret:
                info[f"has_{f.name}"] = (bool, ...)
            else:
                info[f.name] = (python_type(f, for_input=False), ...)
        update["version"] = (
            Annotated[int, PydanticField(ge=1, le=2**31 - 1)],
            PydanticField(..., description="The version the caller read; a stale one is refused with 409."),
        )
        info.update(version=(int, ...), created_at=(UtcTime, ...), updated_at=(UtcTime, ...))
        self.spec = spec
        self.create: type[BaseModel] = create_model(f"{stem}Create", __config__=forbid, **create)
        self.update: type[BaseModel] = create_model(f"{stem}Update", __config__=forbid, **update)
        self.info: type[BaseModel] = create_model(f"{stem}Info", __config__=ConfigDict(from_attributes=True), **info)
        self.page: type[BaseModel] = create_model(
            f"{stem}Page",
            items=(list[self.info], ...),  # type: ignore[name-defined]
            next_cursor=(str | None, None),
            next_offset=(int | None, None),
        )


def _zero(f: Field) -> Any:
    return {"str": "", "text": "", "int": 0, "float": 0.0, "bool": False, "json": {}}.get(f.kind)


_SCHEMAS = {spec.table: RecordSchemas(spec) for spec in RECORD_TYPES}


def schemas_of(spec: RecordType) -> RecordSchemas:
    return _SCHEMAS[spec.table]


class AiRequestDay(BaseModel):
    """One model's requests on one day (UTC), from ai_request_stats and embedding_usage together."""

    day: date
    model: str
    kind: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms_avg: float


class AiRequestSummary(BaseModel):
    days: int
    rows: list[AiRequestDay]
    totals_by_model: dict[str, int]  # model -> requests over the window
