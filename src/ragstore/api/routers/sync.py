"""`POST /v1/collections/{name}/sync`: make a collection mirror folders on the server (admin only).

The server reads its own file system here, so the folders must lie under `RAGSTORE_SYNC_ROOTS` (empty: the
route is disabled, 403 naming the setting). A dry run answers at once with the report; a real sync is a
`sync_paths` job (202 with its id, followed at `GET /v1/jobs/{id}`), run by the server's own job thread or
any `ragstore worker`, with the same outbox and audit as `ragstore ingest --sync`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, JSON_BODY, error_responses
from ragstore.api.job_threads import runner_for
from ragstore.api.permissions import require
from ragstore.documents.files import sync_roots
from ragstore.errors import Forbidden, InvalidInput
from ragstore.schemas import IngestReport
from ragstore.schemas.core import StorableStr
from ragstore.security.principal import Role
from ragstore.service import RagStore

__all__ = ["SyncAccepted", "SyncRequest", "router"]

router = APIRouter(prefix="/v1/collections", tags=["documents"])
KIND = "sync_paths"


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[StorableStr] = Field(
        min_length=1, max_length=1000, description="Folders, files or globs on the server, under RAGSTORE_SYNC_ROOTS."
    )
    root: StorableStr | None = Field(
        None, max_length=4096, description="Store sources relative to this folder (under RAGSTORE_SYNC_ROOTS)."
    )
    dry_run: bool = Field(False, description="Answer with what would happen (200); change nothing.")
    keep_duplicates: bool = False
    encoding: StorableStr | None = Field(None, max_length=32)


class SyncAccepted(BaseModel):
    collection: str
    job_id: int
    status_url: str


def _allowed(store: RagStore, body: SyncRequest) -> None:
    roots = sync_roots(store.settings.sync_roots)
    if not roots:
        raise Forbidden("sync over HTTP is disabled: RAGSTORE_SYNC_ROOTS names no folder")
    for raw in [*body.paths, *([body.root] if body.root else [])]:
        if len(raw) > 4096:
            raise InvalidInput("a path is longer than 4096 characters", details={"field": "paths"})
        if ".." in Path(raw).parts:  # after a wildcard, `..` would climb out of what the fixed part names
            raise Forbidden(
                f"{raw}: '..' is not allowed in a sync path (paths must lie under RAGSTORE_SYNC_ROOTS)",
                details={"setting": "RAGSTORE_SYNC_ROOTS"},
            )
        # A glob is judged by its fixed leading part, resolved; each file it finds is checked again when the
        # sync runs (`confine_to`), so a symlink inside a root cannot lead out either.
        fixed = Path(raw.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0] or ".")
        resolved = fixed.resolve() if fixed.is_absolute() else None
        if resolved is None or not any(resolved == r or resolved.is_relative_to(r) for r in roots):
            raise Forbidden(
                f"{raw}: not an absolute path under RAGSTORE_SYNC_ROOTS", details={"setting": "RAGSTORE_SYNC_ROOTS"}
            )


@router.post(
    "/{name}/sync",
    response_model=IngestReport,
    summary="Mirror server folders into the collection: changed files replaced, new added, gone deleted",
    dependencies=[Depends(require(Role.ADMIN, "name"))],
    responses={
        200: {"model": IngestReport, "description": "`dry_run`: what would happen; nothing changed."},
        202: {"model": SyncAccepted, "description": "The sync was queued as a job; follow it at status_url."},
        **error_responses(
            *JSON_BODY,
            (403, "Sync over HTTP is disabled (RAGSTORE_SYNC_ROOTS is empty) or a path is not under it."),
            (404, "The collection does not exist."),
            DOWN,
        ),
    },
)
async def sync_collection(
    name: str, body: SyncRequest, request: Request, store: RagStore = Depends(get_store)
) -> IngestReport | JSONResponse:
    _allowed(store, body)
    store.collections.get(name)  # an unknown collection is a 404 now, not a dead job later
    if body.dry_run:
        return await run_in_threadpool(
            store.documents.sync_paths,
            name,
            body.paths,
            root=body.root,
            dry_run=True,
            keep_duplicates=body.keep_duplicates,
            encoding=body.encoding,
            confine_to=sync_roots(store.settings.sync_roots),
        )
    payload = {"collection": name, **body.model_dump(exclude_none=True), "confined": True}
    job_id = store.jobs.enqueue(KIND, payload, max_attempts=3)
    runner_for(request.app, store, KIND).wake()
    accepted = SyncAccepted(collection=name, job_id=job_id, status_url=f"/v1/jobs/{job_id}")
    return JSONResponse(status_code=202, content=accepted.model_dump(), headers={"location": accepted.status_url})
