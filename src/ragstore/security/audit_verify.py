"""Verifying the audit log: the hash chain row by row, and the signed checkpoints against it.

Rows are read in sequence order in batches (keyset pages on the primary key), so a log of millions of rows
is checked in bounded memory; the checkpoints are read the same way, ordered by the sequence they cover,
and merged into the walk. The first problem found in sequence order is the verdict:

- a gap in the sequence numbers: `deleted` (a row was removed);
- a row whose hash is not the hash of its fields: `edited`, unless its fields hash correctly under a nearby
  sequence number, which means rows were moved: `inserted` (rows after a forged one were shifted up),
  `reordered` (two rows swapped places) or `deleted` (rows were shifted down over a removed one);
- a row that hashes correctly but does not chain to the row before it: `reordered` when it chains to a row
  elsewhere in the log, `inserted` when it chains to nothing;
- a checkpoint whose head hash is not the chain's hash at its sequence: `checkpoint_mismatch` (a row at or
  before it was changed and the hashes after it recomputed);
- a checkpoint that covers rows beyond the last one: `missing` (the tail was cut off);
- a checkpoint not signed by the configured key, or not naming its predecessor's signature: `bad_signature`,
  `checkpoint_chain`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Row

from ragstore.db.engine import Database
from ragstore.db.security_models import AuditCheckpoint, AuditLog
from ragstore.schemas.audit import AuditProblem, AuditVerification
from ragstore.security.audit import GENESIS_HASH, AuditEntry
from ragstore.security.checkpoints import CheckpointSigner, SignedCheckpoint

__all__ = ["BATCH", "verify_log"]

BATCH = 2_000
# How far a moved row is looked for (only on the failure path): rows shifted by more read as `edited`.
MOVE_WINDOW = 64
_ROWS = select(AuditLog.__table__)
_CHECKPOINTS = select(AuditCheckpoint.__table__)


@dataclass(slots=True)
class _Finding:
    sequence: int
    problem: AuditProblem
    reason: str
    checkpoint_id: int | None = None


def _entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry.of(row)  # type: ignore[arg-type]  # a Core row has the model's attributes


def _pages(db: Database, query: Select[Any], key: Any, *, then: Any = None) -> Iterator[Row[Any]]:
    """Every row of `query` ordered by `key` (and `then`), a page of BATCH rows per short read transaction."""
    last: tuple[Any, ...] | None = None
    while True:
        page = query
        if last is not None:
            if then is None:
                page = page.where(key > last[0])
            else:
                page = page.where((key > last[0]) | ((key == last[0]) & (then > last[1])))
        order = (key,) if then is None else (key, then)
        with db.read() as s:
            rows = s.execute(page.order_by(*order).limit(BATCH)).all()
        yield from rows
        if len(rows) < BATCH:
            return
        tail = rows[-1]
        last = (tail.sequence,) if then is None else (tail.sequence, tail.id)


def _moved_from(entry: AuditEntry) -> int | None:
    """The sequence number under which this row's fields hash to its stored hash, if another nearby one."""
    for offset in range(1, MOVE_WINDOW + 1):
        for candidate in (entry.sequence - offset, entry.sequence + offset):
            if candidate >= 1 and _rehash(entry, candidate) == entry.row_hash:
                return candidate
    return None


def _rehash(entry: AuditEntry, sequence: int) -> str:
    from dataclasses import replace

    return replace(entry, sequence=sequence).expected_hash()


class _Walk:
    """The chain walk: feeds rows in sequence order, keeps the first finding."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.previous: AuditEntry | None = None
        self.found: _Finding | None = None
        self.rows = 0

    def _chains_elsewhere(self, column: Any, value: str, sequence: int) -> bool:
        with self.db.read() as s:
            hit = s.execute(select(AuditLog.sequence).where(column == value).limit(2)).scalars().all()
        return any(int(h) != sequence for h in hit)

    def feed(self, entry: AuditEntry, following: AuditEntry | None) -> bool:
        """Check one row; False once a problem is found (the walk stops there)."""
        self.rows += 1
        expected = self.previous.sequence + 1 if self.previous else 1
        prev_hash = self.previous.row_hash if self.previous else GENESIS_HASH
        s = entry.sequence
        if s != expected:
            self.found = _Finding(expected, "deleted", f"sequence {expected} is missing (the next row is {s})")
            return False
        if entry.expected_hash() != entry.row_hash:
            origin = _moved_from(entry)
            if origin is None:
                if following is not None and _rehash(following, s) == following.row_hash:
                    self.found = _Finding(s, "inserted", f"row {s} was inserted: the rows after it were shifted up")
                else:
                    self.found = _Finding(s, "edited", f"row {s} was changed: its hash is not the hash of its fields")
            elif origin < s:
                self.found = _Finding(origin, "inserted", f"row {s} was written as row {origin}: rows were inserted")
            elif self._chains_elsewhere(AuditLog.previous_hash, prev_hash, s):
                self.found = _Finding(s, "reordered", f"row {s} was written as row {origin}: rows were reordered")
            else:
                self.found = _Finding(s, "deleted", f"row {s} was written as row {origin}: a row was deleted")
            return False
        if entry.previous_hash != prev_hash:
            if self._chains_elsewhere(AuditLog.row_hash, entry.previous_hash, s):
                self.found = _Finding(s, "reordered", f"row {s} does not follow row {s - 1}: rows were reordered")
            else:
                self.found = _Finding(s, "inserted", f"row {s} chains to no row of the log: it was inserted")
            return False
        self.previous = entry
        return True


def _rows(db: Database) -> Iterator[tuple[AuditEntry, AuditEntry | None]]:
    """Each row with the one after it (a one-row look-ahead tells an inserted row from an edited one)."""
    stream = (_entry(r) for r in _pages(db, _ROWS, AuditLog.sequence))
    current = next(stream, None)
    while current is not None:
        following = next(stream, None)
        yield current, following
        current = following


def _check_signatures(db: Database, signer: CheckpointSigner) -> tuple[int, _Finding | None]:
    """Every checkpoint in the order written: signed by the configured key, chained to the one before."""
    count = 0
    previous_signature = ""
    query = _CHECKPOINTS
    last_id = 0
    while True:
        with db.read() as s:
            rows = s.execute(query.where(AuditCheckpoint.id > last_id).order_by(AuditCheckpoint.id).limit(BATCH)).all()
        for row in rows:
            count += 1
            seq = int(row.sequence)
            if not signer.verifies(row):
                by = (
                    "another key"
                    if row.public_key != signer.public_hex
                    else "the configured key, but it does not match"
                )
                return count, _Finding(seq, "bad_signature", f"checkpoint {row.id} is signed by {by}", int(row.id))
            if row.previous_signature != previous_signature:
                return count, _Finding(
                    seq,
                    "checkpoint_chain",
                    f"checkpoint {row.id} does not follow the checkpoint before it",
                    int(row.id),
                )
            previous_signature = row.signature
        if len(rows) < BATCH:
            return count, None
        last_id = int(rows[-1].id)


def _check_carried(db: Database, signer: CheckpointSigner, carried: SignedCheckpoint) -> _Finding | None:
    """A checkpoint kept outside the log (a backup's copy): signed by the configured key, its rows present,
    its head hash the chain's at its sequence. It may be absent from the log's own checkpoints table."""
    seq = int(carried.sequence)
    if not signer.verifies(carried):
        return _Finding(seq, "bad_signature", "the checkpoint the backup carries is not signed by the configured key")
    if seq == 0:
        return None
    with db.read() as s:
        head = s.execute(select(AuditLog.row_hash).where(AuditLog.sequence == seq)).scalar()
        last = int(s.scalar(select(func.max(AuditLog.sequence))) or 0)
    if head is None:
        return _Finding(
            last + 1, "missing", f"the backup's checkpoint covers rows up to {seq}, but the log ends at {last}"
        )
    if head != carried.head_hash:
        return _Finding(1, "checkpoint_mismatch", f"the backup's checkpoint signed another head at row {seq}")
    return None


def verify_log(db: Database, signer: CheckpointSigner, carried: Iterable[SignedCheckpoint] = ()) -> AuditVerification:
    """The whole log against itself, its checkpoints and any `carried` (see the module's docstring)."""
    checkpoints_checked, signature_finding = _check_signatures(db, signer)
    for outside in carried:
        checkpoints_checked += 1
        finding = _check_carried(db, signer, outside)
        if finding is not None and (signature_finding is None or finding.sequence < signature_finding.sequence):
            signature_finding = finding
    walk = _Walk(db)
    marks = _pages(db, _CHECKPOINTS, AuditCheckpoint.sequence, then=AuditCheckpoint.id)
    mark = next(marks, None)
    last_good_mark = 0
    found: _Finding | None = None
    while mark is not None and int(mark.sequence) == 0:  # checkpoints of the empty log
        if mark.head_hash != GENESIS_HASH:
            found = _Finding(1, "checkpoint_mismatch", f"checkpoint {mark.id} of the empty log names a head", mark.id)
            break
        mark = next(marks, None)
    if found is None:
        for entry, following in _rows(db):
            if not walk.feed(entry, following):
                found = walk.found
                break
            while mark is not None and int(mark.sequence) == entry.sequence:
                if mark.head_hash != entry.row_hash:
                    found = _Finding(
                        last_good_mark + 1,
                        "checkpoint_mismatch",
                        f"checkpoint {mark.id} signed another head at row {entry.sequence}: a row from "
                        f"{last_good_mark + 1} to {entry.sequence} was changed and the hashes after it recomputed",
                        int(mark.id),
                    )
                    break
                last_good_mark = entry.sequence
                mark = next(marks, None)
            if found is not None:
                break
        else:
            head = walk.previous.sequence if walk.previous else 0
            if mark is not None and int(mark.sequence) > head:
                found = _Finding(
                    head + 1,
                    "missing",
                    f"checkpoint {mark.id} covers rows up to {mark.sequence}, but the log ends at {head}: "
                    f"rows from {head + 1} were removed",
                    int(mark.id),
                )
    if signature_finding is not None and (found is None or signature_finding.sequence < found.sequence):
        found = signature_finding
    head_entry = walk.previous
    return AuditVerification(
        ok=found is None,
        rows_checked=walk.rows,
        checkpoints_checked=checkpoints_checked,
        head_sequence=head_entry.sequence if head_entry else 0,
        head_hash=head_entry.row_hash if head_entry else GENESIS_HASH,
        first_bad_sequence=None if found is None else found.sequence,
        problem=None if found is None else found.problem,
        reason="" if found is None else found.reason,
        checkpoint_id=None if found is None else found.checkpoint_id,
        public_key=signer.public_hex,
    )
