"""What the audit log answers: its rows, its signed checkpoints and the verdict of a verification."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ragstore.schemas.core import Model, UtcTime

__all__ = ["AuditCheckpointInfo", "AuditEntryInfo", "AuditProblem", "AuditVerification"]

# Why a verification failed, at the first bad row (or checkpoint):
# - edited: a row's hash is not the hash of its fields (a field was changed);
# - deleted: a sequence number is missing (a gap) or the rows start after 1;
# - inserted: a row's previous_hash is not its predecessor's hash, but it hashes correctly (a row was forged in);
# - reordered: the chain links rows out of order (a row holds a hash of a row that comes later);
# - missing: rows a signed checkpoint covers are not there (the tail was cut off);
# - checkpoint_mismatch: a checkpoint's head hash is not the hash the chain has at its sequence;
# - bad_signature: a checkpoint is not signed by the configured key (forged, or signed by another key);
# - checkpoint_chain: a checkpoint does not name its predecessor's signature (one was removed or inserted).
AuditProblem = Literal[
    "edited", "deleted", "inserted", "reordered", "missing", "checkpoint_mismatch", "bad_signature", "checkpoint_chain"
]


class AuditEntryInfo(Model):
    """One audit row as `ragstore audit list` and `GET /v1/audit` show it."""

    sequence: int
    created_at: UtcTime
    actor: str
    action: str
    target: str
    outcome: str
    request_id: str
    client_address: str
    details: dict[str, Any] = Field(default_factory=dict)
    previous_hash: str
    row_hash: str


class AuditCheckpointInfo(Model):
    """A signed statement that the chain had `head_hash` at `sequence` at `created_at`."""

    id: int
    sequence: int = Field(description="The last audit row covered (0: the log was empty).")
    head_hash: str
    created_at: UtcTime
    previous_signature: str = Field(description="The signature of the checkpoint before (empty for the first).")
    public_key: str = Field(description="The hex Ed25519 public key that signed it.")
    signature: str


class AuditVerification(Model):
    """The verdict over the whole log: `ok`, or the first bad sequence number and why."""

    ok: bool
    rows_checked: int
    checkpoints_checked: int
    head_sequence: int = Field(0, description="The last row's sequence number (0: an empty log).")
    head_hash: str = ""
    first_bad_sequence: int | None = Field(None, description="The first sequence number where the log is wrong.")
    problem: AuditProblem | None = None
    reason: str = Field("", description="One readable line: what is wrong at the first bad sequence.")
    checkpoint_id: int | None = Field(None, description="The checkpoint involved, when one is.")
    public_key: str = Field("", description="The configured key's public key, which checkpoints must be signed by.")
