"""What the secret vault (`store.secrets`) returns: a stored secret's name and key, never its value."""

from __future__ import annotations

from pydantic import Field

from ragstore.schemas.core import Model, UtcTime

__all__ = ["RotationReport", "SecretInfo"]


class SecretInfo(Model):
    """A secret as listings show it: where it belongs and which key sealed it. The value is never here, so
    a listing can be printed, logged or returned over HTTP without care."""

    scope: str = Field(description="Who the secret belongs to, e.g. `collection:docs` or `mcp:3`")
    name: str = Field(description="The secret's name within its scope, e.g. `openai_api_key`")
    key_id: str = Field(description="The first 16 hex digits of SHA-256 of the key that sealed it")
    created_at: UtcTime
    updated_at: UtcTime


class RotationReport(Model):
    """What `ragstore secrets rotate` did. Rows already under the current key are counted, not touched, so a
    second run (or a run resumed after a crash) reports them as `already_current`."""

    key_id: str = Field(description="The current key (ENCRYPTION_KEY)")
    previous_key_id: str | None = Field(description="ENCRYPTION_KEY_PREVIOUS, when it is set")
    rotated: int = Field(description="Rows re-encrypted under the current key by this run")
    already_current: int = Field(description="Rows that were already sealed by the current key")
    unreadable: list[str] = Field(
        default_factory=list,
        description="`scope/name` of rows left as they are: neither key (set ENCRYPTION_KEY_PREVIOUS), or altered",
    )
    batches: int = Field(description="Transactions committed by this run")

    @property
    def complete(self) -> bool:
        """Every row is now sealed by the current key."""
        return not self.unreadable
