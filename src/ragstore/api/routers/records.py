"""HTTP routes of the application records, made from their declarations: `/v1/<table>` for every type.

One factory (`router_for`) turns a RecordType into list / create / get / update / delete routes (create,
update and delete only for types callers write), each with the role the declaration names, bounded inputs
and every status it can answer. A few routes belong to one type: a flow's past version, a workflow's
execution history, the AI request summary and an on-demand cache sample. The routes only translate: every
rule is `store.records`' (records/service.py).

No `from __future__ import annotations` here: the request bodies' types are the derived schemas, objects
made at import time, and FastAPI must see them as objects rather than names.
"""

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, INVALID, JSON_BODY, error_responses
from ragstore.api.permissions import require
from ragstore.declarations.record_spec import RecordType
from ragstore.declarations.record_types import EXECUTION_STATES, RECORD_TYPES, by_table
from ragstore.records.schemas import AiRequestSummary, RecordSchemas, schemas_of
from ragstore.records.service import DEFAULT_LIMIT, MAX_FILTER_CHARS, MAX_LIMIT, MAX_OFFSET
from ragstore.records.stats import MAX_SUMMARY_DAYS
from ragstore.security.principal import Role
from ragstore.service import RagStore

__all__ = ["router", "router_for"]

NO_KEY = (401, "No API key or session, or one that proves nothing.")
MISSING = (404, "No record with this id.")
STALE = (409, "The record changed since the caller read it (a stale `version`), or its unique name is taken.")
RecordId = Path(ge=1, le=2**63 - 1, description="The record's id.")


def _lacks(role: Role) -> tuple[int, str]:
    return (403, f"The caller does not hold the {role.value} role (on every collection).")


def router_for(spec: RecordType) -> APIRouter:
    """The five routes of one record type (list and get only, when the store writes it itself)."""
    schemas = schemas_of(spec)
    table = spec.table
    router = APIRouter(prefix=f"/v1/{table}", tags=["records"])
    read = [Depends(require(spec.read_role))]

    def list_records(
        filter: str | None = Query(
            None,
            max_length=MAX_FILTER_CHARS,
            description='A JSON object: {"field": value, "field__gte": low, "field__lt": high}. Fields: '
            + ", ".join(sorted(spec.filterable)),
        ),
        sort: str | None = Query(
            None,
            max_length=64,
            description="A field to order by (`-field`: descending): " + ", ".join(sorted(spec.sortable)),
        ),
        limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="At most this many records."),
        offset: int | None = Query(None, ge=0, le=MAX_OFFSET, description="Skip this many (any sort)."),
        cursor: str | None = Query(
            None, max_length=19, description="The `next_cursor` of the previous page (the id order only)."
        ),
        store: RagStore = Depends(get_store),
    ) -> Any:
        return store.records.list(table, filters=filter, sort=sort, limit=limit, offset=offset, cursor=cursor)

    router.add_api_route(
        "",
        list_records,
        methods=["GET"],
        response_model=schemas.page,
        summary=f"List {table} (filters, sort, cursor or offset)",
        dependencies=read,
        responses=error_responses(NO_KEY, _lacks(spec.read_role), INVALID, DOWN),
        operation_id=f"list_{table}",
    )

    def get_record(record_id: int = RecordId, store: RagStore = Depends(get_store)) -> Any:
        return store.records.get(table, record_id)

    router.add_api_route(
        "/{record_id:int}",
        get_record,
        methods=["GET"],
        response_model=schemas.info,
        summary=f"One {spec.label}",
        dependencies=read,
        responses=error_responses(NO_KEY, _lacks(spec.read_role), MISSING, INVALID, DOWN),
        operation_id=f"get_{table}",
    )
    if not spec.writable:
        return router

    def create_record(body: Any = Body(...), store: RagStore = Depends(get_store)) -> Any:
        return store.records.create(table, body)

    create_record.__annotations__["body"] = schemas.create
    router.add_api_route(
        "",
        create_record,
        methods=["POST"],
        status_code=201,
        response_model=schemas.info,
        summary=f"Create a {spec.label}",
        dependencies=[Depends(require(spec.write_role))],
        responses=error_responses(
            NO_KEY, _lacks(spec.write_role), (409, "The unique name is taken."), *JSON_BODY, DOWN
        ),
        operation_id=f"create_{table}",
    )

    def update_record(record_id: int = RecordId, body: Any = Body(...), store: RagStore = Depends(get_store)) -> Any:
        return store.records.update(table, record_id, body)

    update_record.__annotations__["body"] = schemas.update
    router.add_api_route(
        "/{record_id:int}",
        update_record,
        methods=["PATCH"],
        response_model=schemas.info,
        summary=f"Change a {spec.label} (send the `version` you read; a stale one is 409)",
        dependencies=[Depends(require(spec.write_role))],
        responses=error_responses(NO_KEY, _lacks(spec.write_role), MISSING, STALE, *JSON_BODY, DOWN),
        operation_id=f"update_{table}",
    )

    def delete_record(record_id: int = RecordId, store: RagStore = Depends(get_store)) -> Response:
        store.records.delete(table, record_id)
        return Response(status_code=204)

    router.add_api_route(
        "/{record_id:int}",
        delete_record,
        methods=["DELETE"],
        status_code=204,
        response_class=Response,
        summary=f"Delete a {spec.label} (and what belongs to it), audited",
        dependencies=[Depends(require(spec.delete_role))],
        responses=error_responses(NO_KEY, _lacks(spec.delete_role), MISSING, INVALID, DOWN),
        operation_id=f"delete_{table}",
    )
    return router


def _schemas(table: str) -> RecordSchemas:
    spec = by_table(table)
    assert spec is not None
    return schemas_of(spec)


# -- the routes of one type --------------------------------------------------------------------------------
extras = APIRouter(tags=["records"])


@extras.get(
    "/v1/ai_request_stats/summary",
    response_model=AiRequestSummary,
    summary="AI requests per model and day: counts, errors, tokens, cost, latency (embedding_usage included)",
    dependencies=[Depends(require(Role.READ))],
    responses=error_responses(NO_KEY, _lacks(Role.READ), INVALID, DOWN),
)
def ai_request_summary(
    days: int = Query(7, ge=1, le=MAX_SUMMARY_DAYS, description="The window, in days up to now."),
    store: RagStore = Depends(get_store),
) -> AiRequestSummary:
    return store.records.ai_summary(days)


@extras.post(
    "/v1/cache_metadata/sample",
    status_code=201,
    response_model=list.__class_getitem__(_schemas("cache_metadata").info),
    summary="Sample every cache layer's hit and miss counts now (the scheduler does this periodically)",
    dependencies=[Depends(require(Role.WRITE))],
    responses=error_responses(NO_KEY, _lacks(Role.WRITE), DOWN),
)
def sample_caches(store: RagStore = Depends(get_store)) -> Any:
    return store.records.sample_caches()


@extras.get(
    "/v1/flows/{record_id:int}/versions/{flow_version:int}",
    response_model=_schemas("flow_versions").info,
    summary="A flow as it was at one version",
    dependencies=[Depends(require(Role.READ))],
    responses=error_responses(NO_KEY, _lacks(Role.READ), (404, "No such flow or version."), INVALID, DOWN),
)
def flow_version(
    record_id: int = RecordId,
    flow_version: int = Path(ge=1, le=2**31 - 1, description="The flow's version number."),
    store: RagStore = Depends(get_store),
) -> Any:
    return store.records.flow_version(record_id, flow_version)


@extras.get(
    "/v1/workflows/{record_id:int}/executions",
    response_model=_schemas("workflow_executions").page,
    summary="A workflow's execution history, newest first, by status and start time",
    dependencies=[Depends(require(Role.READ))],
    responses=error_responses(NO_KEY, _lacks(Role.READ), (404, "No such workflow."), INVALID, DOWN),
)
def workflow_executions(
    record_id: int = RecordId,
    status: str | None = Query(None, max_length=16, description="One of: " + ", ".join(EXECUTION_STATES)),
    since: datetime | None = Query(None, description="Started at or after this time (ISO 8601)."),
    until: datetime | None = Query(None, description="Started before this time (ISO 8601)."),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="At most this many executions."),
    cursor: str | None = Query(None, max_length=19, description="The `next_cursor` of the previous page."),
    store: RagStore = Depends(get_store),
) -> Any:
    return store.records.executions(record_id, status=status, since=since, until=until, limit=limit, cursor=cursor)


router = APIRouter()
router.include_router(extras)  # before the generic `/{record_id}` routes of the same prefixes
for _spec in RECORD_TYPES:
    router.include_router(router_for(_spec))
