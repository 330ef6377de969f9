"""Writing to the outbox, and who a process is when it claims work from it.

Every operation is created leased to the process that wrote it: that process applies its own writes
inline (so a document is searchable when its ingest call returns), and no worker elsewhere starts on the
same operation meanwhile. If the writer dies first, the lease lapses and any worker takes the operation.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from ragstore.db.models import OpKind, SyncOperation, utcnow
from ragstore.valid_text import ascii_digits

__all__ = ["CREATOR_LEASE_S", "owner_is_dead_here", "process_owner", "queue_operation"]

# Long enough for the writer to apply a large batch inline; short enough that a crashed writer's work
# waits at most this long for a worker.
CREATOR_LEASE_S = 60.0

_owner: tuple[int, str] | None = None


def process_owner() -> str:
    """host:pid:nonce of this process (recomputed after a fork, so a child never reuses its parent's)."""
    global _owner
    pid = os.getpid()
    if _owner is None or _owner[0] != pid:
        _owner = (pid, f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}")
    return _owner[1]


def owner_is_dead_here(owner: str) -> bool:
    """Whether a lease owner names a process of this host that no longer runs.

    Such a lease can be released at once instead of waiting for it to lapse (a restart after a crash
    resumes immediately). Owners on other hosts, or a reused pid, are left to their lease's expiry.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not ascii_digits(pid_text) or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def queue_operation(
    s: Session,
    collection_id: int,
    kind: str,
    chunk_ids: list[int],
    *,
    lease: bool = True,
    now: datetime | None = None,
) -> SyncOperation:
    """Add an outbox row in the caller's transaction, leased to this process (or, `lease=False`, to none).

    `now` (by default the real time) is when the operation becomes due and its creator's lease starts: a
    caller driven by a `ragstore.clock.Clock` passes `clock.now()` so the applier's clock agrees with it.
    """
    if kind not in (OpKind.UPSERT, OpKind.DELETE, OpKind.DROP_COLLECTION):
        raise ValueError(f"unknown sync operation kind {kind!r}")
    now = utcnow() if now is None else now
    op = SyncOperation(
        collection_id=collection_id,
        kind=kind,
        chunk_ids=chunk_ids,
        next_attempt_at=now,
        lease_owner=process_owner() if lease else None,
        lease_expires_at=now + timedelta(seconds=CREATOR_LEASE_S) if lease else None,
    )
    s.add(op)
    return op
