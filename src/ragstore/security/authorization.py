"""The permission checks every face makes, over the one rule of `Principal.allows` (security/principal.py).

The HTTP API's routes (api/permissions.py re-exports these, and its `require` is built on them) and the MCP
tools (integrations/mcp/) call the same functions, so a key gets the same answer whichever face it uses:
- a collection the principal holds no grant on is "not found", exactly as one that does not exist, so a
  key bound to collection A cannot learn whether B exists;
- a collection it may know of but lacks the role on is "forbidden";
- a listing shows only what the principal may read.
They live here, below every face, because the faces' packages may not import each other (tests/test_layers.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from ragstore.errors import Forbidden, NotFound
from ragstore.security.principal import Principal, PrincipalKind, Role, role_includes

__all__ = ["LOCAL_OPERATOR", "MAX_CREDENTIAL", "authorize", "holds_anywhere", "readable"]

# With RAGSTORE_AUTH=off (loopback only) every caller is the local operator.
LOCAL_OPERATOR = Principal(PrincipalKind.ANONYMOUS, "local", {"*": Role.ADMIN})
MAX_CREDENTIAL = 4096  # the longest bearer credential any face reads (a key is 66 characters, a token less than 1 KiB)


def authorize(principal: Principal, role: Role, collection: str, *, what: str = "this route") -> None:
    """NotFound when the principal may not know `collection` exists, Forbidden when it may but lacks `role`
    there (`what`: how the message names the thing asked for)."""
    if not principal.sees_collection(collection):
        raise NotFound(f"no collection named {collection!r}")
    if not principal.allows(role, collection):
        raise Forbidden(f"{what} needs the {role.value} role on collection {collection!r}; the caller lacks it")


def readable(principal: Principal, names: Iterable[str], role: Role = Role.READ) -> set[str]:
    """Those of `names` the principal holds `role` on (a listing shows no more)."""
    return {name for name in names if principal.allows(role, name)}


def holds_anywhere(principal: Principal, role: Role) -> bool:
    """Whether the principal holds `role` on at least one collection (what a listing asks before it filters)."""
    return any(role_includes(held, role) for held in principal.grants.values())
