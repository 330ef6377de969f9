"""Which principal may call a route: the one `require(...)` dependency every route declares.

A route names the role it needs and the path parameter that holds its collection, if any. The rule itself
is `Principal.allows` (security/principal.py), and the checks over it (`authorize`, `readable`,
`holds_anywhere`, re-exported here) are security/authorization.py's, the same for every face (MCP too).
The outcomes, in this order:
- no principal (no key or session, or one that proves nothing): 401 with `WWW-Authenticate: Bearer`;
- a collection route whose collection the principal holds no grant on: 404, exactly as for a collection
  that does not exist, so a key bound to collection A cannot learn whether B exists;
- a principal without the role: 403.
`on_any=True` is for routes whose collections are decided inside (a listing filtered to what the caller
may read, a job whose collection is read from the job): the principal must hold the role on at least one
collection, and the route then calls `authorize` or `readable` for each collection it touches. A collection
named in a body rather than the path is checked the same way with `authorize`.
With RAGSTORE_AUTH=off (loopback only) every caller is the local operator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts

from ragstore.errors import Forbidden, Unauthorized
from ragstore.security.authorization import LOCAL_OPERATOR, authorize, holds_anywhere, readable
from ragstore.security.principal import Principal, Role

__all__ = [
    "LOCAL_OPERATOR",
    "PUBLIC",
    "RouteAccess",
    "access_of",
    "api_routes",
    "authenticated",
    "authorize",
    "document_access",
    "holds_anywhere",
    "principal_of",
    "public",
    "readable",
    "require",
]

PUBLIC = "public"
NEEDS_CREDENTIALS = "this route needs an API key (Authorization: Bearer rsk_... or X-API-Key) or a login"


class RouteAccess:
    """What a route asks of its caller; kept on the dependency so tests and the docs can read the route table."""

    def __init__(
        self,
        role: Role | None,
        collection_param: str | None,
        on_any: bool = False,
        *,
        authenticated: bool = False,
        page: bool = False,
    ) -> None:
        self.role = role  # None: public (or, with `authenticated`, any caller who proved who they are)
        self.collection_param = collection_param
        self.on_any = on_any
        self.authenticated = authenticated or role is not None
        self.page = page  # an HTML page: nobody logged in is sent (303) to its login form instead of a 401

    def __repr__(self) -> str:
        return (
            f"RouteAccess({self.role}, {self.collection_param!r}, on_any={self.on_any}, "
            f"authenticated={self.authenticated}, page={self.page})"
        )


def principal_of(request: Request) -> Principal | None:
    """The principal the authentication middleware found for this request (None: nobody proved anything)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None and request.app.state.store.settings.auth == "off":
        return LOCAL_OPERATOR
    return principal


def require(
    role: Role, collection_param: str | None = None, *, on_any: bool = False
) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that lets through only a principal holding `role` (on the collection in `collection_param`,
    on every collection, or with `on_any` on at least one)."""

    async def check(request: Request) -> Principal:
        principal = principal_of(request)
        if principal is None:
            raise Unauthorized(NEEDS_CREDENTIALS)
        collection = request.path_params.get(collection_param) if collection_param else None
        if collection is not None:
            authorize(principal, role, str(collection))
        elif not (holds_anywhere(principal, role) if on_any else principal.allows(role)):
            raise Forbidden(f"this route needs the {role.value} role; the caller does not hold it")
        return principal

    check.access = RouteAccess(role, collection_param, on_any)  # type: ignore[attr-defined]
    return check


def public() -> Callable[[Request], Awaitable[Principal | None]]:
    """A dependency that marks a route as open to everyone (login, liveness): declared, never forgotten."""

    async def check(request: Request) -> Principal | None:
        return principal_of(request)

    check.access = RouteAccess(None, None)  # type: ignore[attr-defined]
    return check


def authenticated() -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that lets through any caller who proved who they are, whatever their grants (`/me`)."""

    async def check(request: Request) -> Principal:
        principal = principal_of(request)
        if principal is None:
            raise Unauthorized(NEEDS_CREDENTIALS)
        return principal

    check.access = RouteAccess(None, None, authenticated=True)  # type: ignore[attr-defined]
    return check


def api_routes(app: FastAPI) -> list[Any]:
    """Every API route as served: its full path, methods and the dependencies of the routers it came through.

    FastAPI (0.165) keeps an included router in `app.routes` as one entry and builds its routes lazily, so
    walking `app.routes` would see none of them; `iter_route_contexts` yields each as served.
    """
    return [context for context in iter_route_contexts(app.routes) if isinstance(context.original_route, APIRoute)]


def access_of(route: Any) -> RouteAccess | None:
    """The access a route declared through `require` or `public` (None: it declared none, a bug)."""
    for dependency in route.dependant.dependencies:
        access = getattr(dependency.call, "access", None)
        if isinstance(access, RouteAccess):
            return access
    return None


SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (rsk_...) or an access token from POST /v1/auth/login.",
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key (rsk_...)."},
}
UNAUTHORIZED = "No credentials, or credentials that prove nothing (unknown, expired or revoked key; bad token)."
BAD_CREDENTIALS = "Credentials were sent but prove nothing (unknown, expired or revoked key; bad token)."
FORBIDDEN = "The caller's key or session lacks the role this route needs."
HIDDEN = "The collection does not exist, or the caller holds no grant on it."


def document_access(app: FastAPI) -> None:
    """Every route's 401/403 (and 404 where a collection is named) and the security schemes in OpenAPI."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        for route in api_routes(app):
            access = access_of(route)
            if access is None:
                continue
            for method in route.methods or ():
                operation = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
                if operation is None:
                    continue
                responses = operation.setdefault("responses", {})
                if not access.authenticated:  # public, but credentials that prove nothing are still refused
                    operation["security"] = [{}, {"bearer": []}, {"apiKey": []}]
                    responses.setdefault("401", {"description": BAD_CREDENTIALS, "content": body})
                    continue
                operation["security"] = [{"bearer": []}, {"apiKey": []}]
                statuses = [(401, UNAUTHORIZED)] if access.role is None else [(401, UNAUTHORIZED), (403, FORBIDDEN)]
                if access.collection_param is not None:
                    statuses.append((404, HIDDEN))
                for status, meaning in statuses:
                    responses.setdefault(str(status), {"description": meaning, "content": body})
        schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
