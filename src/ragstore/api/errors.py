"""Domain errors as HTTP responses: the status their category carries, and a JSON body that names the problem."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ragstore.errors import RagstoreError

__all__ = ["ErrorResponse", "error_responses", "install_error_handlers", "status_for"]


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    """The body of every error answer: `{"error": {"code", "message", "details"?}}`."""

    error: ErrorDetail


def error_responses(*statuses: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route's error statuses, each with what it means there and the error body."""
    return {status: {"model": ErrorResponse, "description": meaning} for status, meaning in statuses}


def status_for(exc: RagstoreError) -> int:
    """The error's category decides (`ragstore.errors`), so the API and the CLI can never disagree."""
    return exc.http_status


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
