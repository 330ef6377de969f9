"""Which principal may call a route: the one `require(...)` dependency every route declares.

A route names the role it needs and the path parameter that holds its collection, if any. The rule itself
is `Principal.allows` (security/principal.py), the same for every face. The outcomes, in this order:
- no principal (no key or session, or one that proves nothing): 401 with `WWW-Authenticate: Bearer`;
- a collection route whose collection the principal holds no grant on: 404, exactly as for a collection
  that does not exist, so a key bound to collection A cannot learn whether B exists;
- a principal without the role: 403.
With RAGSTORE_AUTH=off (loopback only) every caller is the local operator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from ragstore.errors import Forbidden, NotFound, Unauthorized
from ragstore.security.principal import Principal, PrincipalKind, Role

__all__ = ["LOCAL_OPERATOR", "PUBLIC", "RouteAccess", "principal_of", "public", "require"]

LOCAL_OPERATOR = Principal(PrincipalKind.ANONYMOUS, "local", {"*": Role.ADMIN})
PUBLIC = "public"


class RouteAccess:
    """What a route asks of its caller; kept on the dependency so tests and the docs can read the route table."""

    def __init__(self, role: Role | None, collection_param: str | None) -> None:
        self.role = role  # None: public
        self.collection_param = collection_param


def principal_of(request: Request) -> Principal | None:
    """The principal the authentication middleware found for this request (None: nobody proved anything)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None and request.app.state.store.settings.auth == "off":
        return LOCAL_OPERATOR
    return principal


def require(role: Role, collection_param: str | None = None) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that lets through only a principal holding `role` (on the collection in `collection_param`)."""

    async def check(request: Request) -> Principal:
        principal = principal_of(request)
        if principal is None:
            raise Unauthorized("this route needs an API key (Authorization: Bearer rsk_... or X-API-Key) or a login")
        collection = request.path_params.get(collection_param) if collection_param else None
        if collection is not None and not principal.sees_collection(str(collection)):
            raise NotFound(f"no collection named {collection!r}")
        if not principal.allows(role, None if collection is None else str(collection)):
            where = f" on collection {collection!r}" if collection is not None else ""
            raise Forbidden(f"this route needs the {role.value} role{where}; the caller does not hold it")
        return principal

    check.access = RouteAccess(role, collection_param)  # type: ignore[attr-defined]
    return check


def public() -> Callable[[Request], Awaitable[Principal | None]]:
    """A dependency that marks a route as open to everyone (login, liveness): declared, never forgotten."""

    async def check(request: Request) -> Principal | None:
        return principal_of(request)

    check.access = RouteAccess(None, None)  # type: ignore[attr-defined]
    return check
