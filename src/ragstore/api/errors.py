"""Domain errors as HTTP responses: the status their category carries, and a JSON body that names the problem."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ragstore.errors import RagstoreError, Unauthorized

__all__ = [
    "BAD_BODY",
    "BODY_TOO_LARGE",
    "DOWN",
    "INVALID",
    "JSON_BODY",
    "WRONG_CONTENT_TYPE",
    "ErrorResponse",
    "error_responses",
    "error_responses_of_a_page",
    "install_error_handlers",
    "status_for",
]

# The outcomes every route of a kind shares, for `error_responses`; a route adds its own (404, 409, 507...).
INVALID = (422, "A parameter or the body is not valid (the message names it).")
BAD_BODY = (400, "The body cannot be read: not UTF-8, or broken multipart framing.")
BODY_TOO_LARGE = (413, "The body is over this route's size limit.")
WRONG_CONTENT_TYPE = (415, "The body is not sent as application/json.")
DOWN = (503, "The database, the vector index or the embedder cannot serve now; nothing was changed.")
JSON_BODY = (BAD_BODY, BODY_TOO_LARGE, WRONG_CONTENT_TYPE, INVALID)  # every route that takes a JSON body

ROUTE_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")

# Codes for the errors Starlette raises itself (routing, body parsing), in the vocabulary of ragstore.errors.
HTTP_CODES = {
    400: "invalid_input",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
}


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


def error_responses_of_a_page(*statuses: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """As `error_responses`, for a route whose success is not JSON (an HTML page): FastAPI would document a
    `model` in the route's own media type, but the error body is JSON whatever the route sends on success."""
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    return {
        status: {"description": meaning, "content": {"application/json": {"schema": ref}}}
        for status, meaning in statuses
    }


def status_for(exc: RagstoreError) -> int:
    """The error's category decides (`ragstore.errors`), so the API and the CLI can never disagree."""
    return exc.http_status


def _allowed_methods(request: Request) -> str:
    """Every method some route takes on this path: Starlette names only the first route's (GET on a path that
    a GET and a POST route share), and a client that trusts `Allow` would never try the POST."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in ROUTE_METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RagstoreError)
    async def _domain(_: Request, exc: RagstoreError) -> JSONResponse:
        # A 401 names the scheme that would be accepted (RFC 9110), whichever layer refused the caller.
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return JSONResponse(status_code=status_for(exc), content={"error": exc.to_dict()}, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Routing (404, 405 with its Allow header) and body parsing (400) answer in the documented shape too,
        # not Starlette's `{"detail": ...}`, so a client reads one error body whatever failed.
        message = exc.detail if isinstance(exc.detail, str) and exc.detail else f"HTTP {exc.status_code}"
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and message == "Not Found":
            message = "no such route: check the path (GET /openapi.json lists them)"
        elif exc.status_code == 405 and message == "Method Not Allowed":
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
            message = f"this path does not take {request.method} (allowed: {headers['Allow']})"
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(
            status_code=exc.status_code, content={"error": {"code": code, "message": message}}, headers=headers
        )

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
