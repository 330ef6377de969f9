"""The principal of a call and the one rule of what it may do.

Every face turns its caller into a `Principal` (the API from a key or a session, the CLI as the local
operator) and asks `Principal.allows(role, collection)`; nothing else decides access, so HTTP, MCP and the
integrations get the same answer. Roles are ordered: `admin` includes `write`, which includes `read`;
`metrics` stands apart and reads `/metrics` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ragstore.roles import Role

__all__ = ["ALL_COLLECTIONS", "Principal", "PrincipalKind", "Role", "role_includes"]

ALL_COLLECTIONS = "*"


_RANK = {Role.READ: 1, Role.WRITE: 2, Role.ADMIN: 3}


def role_includes(held: Role, needed: Role) -> bool:
    """Whether holding `held` grants what `needed` asks (admin ⊇ write ⊇ read; metrics only itself, and admin)."""
    if needed is Role.METRICS:
        return held in (Role.METRICS, Role.ADMIN)
    if held is Role.METRICS:
        return False
    return _RANK[held] >= _RANK[needed]


class PrincipalKind(StrEnum):
    KEY = "key"
    USER = "user"
    OPERATOR = "cli"  # the local operator: the CLI runs beside the data files and needs no key
    ANONYMOUS = "anonymous"  # auth off (loopback only): every call is the local operator's, over HTTP
    SYSTEM = "system"  # the scheduler and the server itself


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling and what they were granted: role by collection name, `*` for every collection."""

    kind: PrincipalKind
    name: str  # for the audit log: the key id, the user's e-mail, the OS user
    grants: Mapping[str, Role] = field(default_factory=dict)
    key_id: int | None = None  # api_keys.id
    user_id: int | None = None  # users.id

    @property
    def actor(self) -> str:
        """How the audit log names this principal: `key:<key id>`, `user:<e-mail>`, `cli:<os user>`, ..."""
        return f"{self.kind.value}:{self.name}" if self.name else self.kind.value

    def role_on(self, collection: str | None) -> Role | None:
        """The strongest role held on `collection` (None: a route of no collection, where only `*` counts)."""
        held = [self.grants[ALL_COLLECTIONS]] if ALL_COLLECTIONS in self.grants else []
        if collection is not None and collection in self.grants:
            held.append(self.grants[collection])
        if not held:
            return None
        return max(held, key=lambda r: (_RANK.get(r, 0), r is Role.METRICS))

    def allows(self, needed: Role, collection: str | None = None) -> bool:
        """Fail closed: no grant that includes `needed` on `collection` (or on `*`) means no."""
        grants = self.grants
        held = grants.get(ALL_COLLECTIONS)
        if held is not None and (held is needed or role_includes(held, needed)):
            return True
        if collection is None:
            return False
        held = grants.get(collection)
        return held is not None and (held is needed or role_includes(held, needed))

    def sees_collection(self, collection: str) -> bool:
        """Whether the collection exists for this principal at all (else a 404, not a 403: no existence leak)."""
        return ALL_COLLECTIONS in self.grants or collection in self.grants

    @classmethod
    def operator(cls, name: str) -> Principal:
        return cls(PrincipalKind.OPERATOR, name, {ALL_COLLECTIONS: Role.ADMIN})

    @classmethod
    def system(cls, name: str = "scheduler") -> Principal:
        return cls(PrincipalKind.SYSTEM, name, {ALL_COLLECTIONS: Role.ADMIN})
