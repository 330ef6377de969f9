"""The public types of API keys: what `store.keys` returns and what `/v1/keys` sends and takes.

A key's secret appears in exactly one of them, `CreatedKey.key`, returned once by `create` and `rotate`;
`ApiKeyInfo` (every listing) carries neither the secret nor its HMAC.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ragstore.schemas.core import Model, StorableStr, UtcTime

__all__ = ["ApiKeyInfo", "CreatedKey", "KeyCreate", "KeyGrant", "KeyGrantRequest", "RoleName"]

RoleName = Literal["read", "write", "admin", "metrics"]
# A collection name as collections take it, or "*" for every collection.
GRANT_COLLECTION = Field(min_length=1, max_length=128, description='A collection name, or "*" for every collection.')
GrantCollection = Annotated[StorableStr, Field(min_length=1, max_length=128)]


class KeyGrant(Model):
    """One permission row: `role` on `collection` (or on every collection, `*`)."""

    collection: str
    role: RoleName


class ApiKeyInfo(Model):
    """A key as listings show it: who, what it may do, and its dates; never its secret or the secret's hash."""

    id: int
    key_id: str = Field(description="The public part of the key text (rsk_<key_id>_...), safe to log.")
    name: str
    owner_id: int | None
    created_by: str
    created_at: UtcTime
    expires_at: UtcTime | None
    revoked_at: UtcTime | None
    last_used_at: UtcTime | None
    replaced_by: int | None
    active: bool = Field(description="Neither revoked nor expired now.")
    grants: list[KeyGrant]


class CreatedKey(ApiKeyInfo):
    """A key just made (`create`, `rotate`): the one answer that carries the key text. Store it now."""

    key: str = Field(description="The whole key, rsk_<key_id>_<secret><checksum>; shown this once, never again.")


class KeyGrantRequest(BaseModel):
    """The body of a grant: `role` on `collection`."""

    model_config = ConfigDict(extra="forbid")

    collection: StorableStr = GRANT_COLLECTION
    role: RoleName


class KeyCreate(BaseModel):
    """The body of `POST /v1/keys`."""

    model_config = ConfigDict(extra="forbid")

    name: StorableStr = Field(min_length=1, max_length=200)
    role: RoleName
    collections: list[GrantCollection] = Field(
        default_factory=lambda: ["*"], min_length=1, max_length=100, description='Default: every collection ("*").'
    )
    expires_in_s: int | None = Field(None, ge=60, le=10 * 365 * 86_400, description="Default: never expires.")
