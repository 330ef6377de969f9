"""The one mapping from domain errors to HTTP status codes, and JSON bodies that name the problem."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ragstore.backup.errors import BackupDamaged, BackupError, KeyProblem, NoSpace
from ragstore.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    MigrationError,
    NotFound,
    PayloadTooLarge,
    RagstoreError,
    Unavailable,
    UnsupportedMediaType,
)

__all__ = ["STATUS_BY_ERROR", "install_error_handlers", "status_for"]

STATUS_BY_ERROR: list[tuple[type[RagstoreError], int]] = [
    (PayloadTooLarge, 413),
    (BackupDamaged, 422),  # the backup asked for is unusable; nothing live changed
    (KeyProblem, 422),
    (NoSpace, 507),
    (BackupError, 500),
    (UnsupportedMediaType, 415),
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (Unavailable, 503),
    (ConfigError, 500),
    (MigrationError, 500),
]


def status_for(exc: RagstoreError) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return status
    return 500


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RagstoreError)
    async def _domain(_: Request, exc: RagstoreError) -> JSONResponse:
        return JSONResponse(status_code=status_for(exc), content={"error": exc.to_dict()})

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return JSONResponse(
            status_code=422,
            content={
                "error": {"code": "invalid_input", "message": "; ".join(problems), "details": {"problems": problems}}
            },
        )
