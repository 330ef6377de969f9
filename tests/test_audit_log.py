"""The tamper-evident audit log: triggers, the hash chain, signed checkpoints and verification.

The tampering tests act as an attacker with file access would: they drop the append-only triggers with the
`sqlite3` shell or `psql`, change the table, and expect `verify` to name the first bad sequence and why.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import make_url, select, text
from sqlalchemy.exc import DatabaseError

from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.db.security_models import AuditLog
from ragstore.errors import InvalidInput
from ragstore.migrations import Migrator
from ragstore.security.audit import GENESIS_HASH, AuditEntry, AuditTrail
from ragstore.security.audit_service import AuditService
from ragstore.security.checkpoints import Checkpoints, CheckpointSigner, signer_from_settings

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Log:
    """The audit parts over one migrated database, with the attacker's shell beside them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings)
        Migrator(self.db.engine).ensure_current(auto_upgrade=True)
        self.clock = ManualClock(START)
        self.trail = AuditTrail(self.db, clock=self.clock)
        self.checkpoints = Checkpoints(self.db, signer_from_settings(settings), clock=self.clock)
        self.service = AuditService(audit_trail=self.trail, audit_checkpoints=self.checkpoints)

    def append(self, n: int) -> None:
        for i in range(n):
            self.clock.advance(1)
            self.trail.record("collection.create", target=f"c{i}", details={"i": i})

    def shell(self, *statements: str) -> None:
        """Run SQL as an attacker with the database files would: the sqlite3 shell, or psql."""
        script = ";\n".join(statements) + ";\n"
        if self.settings.is_sqlite:
            binary = shutil.which("sqlite3")
            if binary is None:
                pytest.skip("the sqlite3 shell is not installed (apt-get install sqlite3)")
            path = self.settings.sqlalchemy_url.removeprefix("sqlite:///")
            done = subprocess.run([binary, "-bail", path], input=script, capture_output=True, text=True, timeout=60)
        else:
            binary = shutil.which("psql")
            if binary is None:
                pytest.skip("psql is not installed")
            url = make_url(self.settings.sqlalchemy_url)
            options = url.query.get("options", "")  # -csearch_path=<the test's schema>
            conninfo = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
            script = f"SET search_path TO {str(options).removeprefix('-csearch_path=')};\n" + script
            done = subprocess.run(
                [binary, "-v", "ON_ERROR_STOP=1", "-q", conninfo],
                input=script,
                capture_output=True,
                text=True,
                timeout=60,
            )
        assert done.returncode == 0, done.stderr

    def drop_triggers(self) -> None:
        if self.settings.is_sqlite:
            self.shell("DROP TRIGGER audit_logs_no_update", "DROP TRIGGER audit_logs_no_delete")
        else:
            self.shell(
                "DROP TRIGGER audit_logs_no_update ON audit_logs", "DROP TRIGGER audit_logs_no_truncate ON audit_logs"
            )

    def close(self) -> None:
        self.db.dispose()


@pytest.fixture
def log(make_settings: Callable[..., Settings]) -> Iterator[Log]:
    opened = Log(make_settings())
    yield opened
    opened.close()


def test_an_intact_log_verifies_and_lists(log: Log) -> None:
    empty = log.service.verify()
    assert empty.ok and empty.rows_checked == 0 and empty.head_hash == GENESIS_HASH
    assert log.service.checkpoint().sequence == 0
    log.append(5)
    log.service.checkpoint()
    log.append(2)
    result = log.service.verify()
    assert result.ok, result.reason
    assert (result.rows_checked, result.checkpoints_checked, result.head_sequence) == (7, 2, 7)
    assert result.first_bad_sequence is None
    newest = log.service.list(limit=3)
    assert [e.sequence for e in newest] == [7, 6, 5]
    assert newest[0].actor == "system:scheduler" and newest[0].action == "collection.create"
    assert [e.sequence for e in log.service.list(action="collection.*", limit=100)] == list(range(7, 0, -1))
    assert log.service.list(actor="nobody") == []
    assert [e.sequence for e in log.service.list(since=START + timedelta(seconds=6), limit=10)] == [7, 6]
    with pytest.raises(InvalidInput):
        log.service.list(limit=100_000)


def test_triggers_refuse_update_delete_and_truncate(log: Log) -> None:
    log.append(2)
    statements = ["UPDATE audit_logs SET target = 'x' WHERE sequence = 1", "DELETE FROM audit_logs WHERE sequence = 2"]
    if not log.settings.is_sqlite:
        statements.append("TRUNCATE audit_logs")
    for statement in statements:
        with pytest.raises(DatabaseError, match="append-only"), log.db.engine.begin() as c:
            c.execute(text(statement))
    assert log.service.verify().ok


def _swap(log: Log, a: int, b: int) -> None:
    # The primary key forbids a direct swap: park one row on a free number first.
    log.shell(
        f"UPDATE audit_logs SET sequence = -1 WHERE sequence = {a}",
        f"UPDATE audit_logs SET sequence = {a} WHERE sequence = {b}",
        f"UPDATE audit_logs SET sequence = {b} WHERE sequence = -1",
    )


def _insert_at(log: Log, at: int, last: int) -> None:
    """Shift rows at..last up by one (highest first, the key stays unique) and forge a row into the hole."""
    shifts = [f"UPDATE audit_logs SET sequence = {s + 1} WHERE sequence = {s}" for s in range(last, at - 1, -1)]
    forged = (
        "INSERT INTO audit_logs (sequence, created_at, actor, action, target, outcome, request_id, client_address, "
        "details, previous_hash, row_hash) SELECT {at}, created_at, 'cli:root', 'key.create', 'forged', 'success', "
        "'', '', details, row_hash, '{fake}' FROM audit_logs WHERE sequence = {prev}"
    ).format(at=at, prev=at - 1, fake="f" * 64)
    log.shell(*shifts, forged)


@pytest.mark.parametrize(
    ("tamper", "problem", "first_bad"),
    [
        (lambda log: log.shell("UPDATE audit_logs SET target = 'nothing here' WHERE sequence = 4"), "edited", 4),
        (lambda log: log.shell("UPDATE audit_logs SET outcome = 'failure' WHERE sequence = 1"), "edited", 1),
        (lambda log: log.shell("DELETE FROM audit_logs WHERE sequence = 3"), "deleted", 3),
        (lambda log: log.shell("DELETE FROM audit_logs WHERE sequence = 1"), "deleted", 1),
        (lambda log: _insert_at(log, 4, 6), "inserted", 4),
        (lambda log: _swap(log, 3, 4), "reordered", 3),
        (
            # Deleted, and the rows after it renumbered to hide the gap.
            lambda log: log.shell(
                "DELETE FROM audit_logs WHERE sequence = 2",
                *[f"UPDATE audit_logs SET sequence = {s - 1} WHERE sequence = {s}" for s in range(3, 7)],
            ),
            "deleted",
            2,
        ),
    ],
    ids=["edit", "edit-first", "delete", "delete-first", "insert", "reorder", "delete-renumbered"],
)
def test_tampering_with_the_shell_is_detected(
    log: Log, tamper: Callable[[Log], None], problem: str, first_bad: int
) -> None:
    log.append(6)
    assert log.service.verify().ok
    log.drop_triggers()
    tamper(log)
    result = log.service.verify()
    assert not result.ok
    assert (result.problem, result.first_bad_sequence) == (problem, first_bad), result.reason


def test_a_truncated_tail_behind_a_checkpoint_is_detected(log: Log) -> None:
    log.append(8)
    log.service.checkpoint()
    log.append(2)  # rows 9 and 10, after the checkpoint: cutting them alone cannot be seen
    log.drop_triggers()
    log.shell("DELETE FROM audit_logs WHERE sequence >= 6")
    result = log.service.verify()
    assert (result.ok, result.problem, result.first_bad_sequence) == (False, "missing", 6), result.reason
    assert result.checkpoint_id is not None


def test_a_recomputed_chain_is_caught_by_the_checkpoint(log: Log) -> None:
    """An attacker who edits row 6 and recomputes every hash after it passes the chain, not the checkpoint."""
    log.append(4)
    log.service.checkpoint()
    log.append(4)
    log.service.checkpoint()
    log.drop_triggers()
    # Re-hash in Python as a careful attacker would (the shell has no SHA-256 on SQLite).
    with log.db.read() as s:
        rows = [AuditEntry.of(r) for r in s.scalars(select(AuditLog).order_by(AuditLog.sequence))]
    previous = rows[4].row_hash
    statements = []
    for entry in rows[5:]:
        target = "rewritten" if entry.sequence == 6 else entry.target
        forged = replace(entry, target=target, previous_hash=previous)
        new_hash = forged.expected_hash()
        statements.append(
            f"UPDATE audit_logs SET target = '{target}', previous_hash = '{previous}', row_hash = '{new_hash}' "
            f"WHERE sequence = {entry.sequence}"
        )
        previous = new_hash
    log.shell(*statements)
    result = log.service.verify()
    assert (result.problem, result.first_bad_sequence) == ("checkpoint_mismatch", 5), result.reason


def test_a_forged_checkpoint_is_detected(log: Log) -> None:
    log.append(3)
    log.service.checkpoint()
    forger = Checkpoints(log.db, CheckpointSigner.from_seed(b"\x07" * 32), clock=log.clock)
    forger.write()
    result = log.service.verify()
    assert (result.ok, result.problem, result.first_bad_sequence) == (False, "bad_signature", 3), result.reason
    assert "another key" in result.reason


def test_concurrent_appends_never_fork_the_chain(log: Log) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(15):
                log.trail.record("document.delete", target=f"t{n}/{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    checkpointer = threading.Thread(target=lambda: [log.service.checkpoint() for _ in range(5)])
    for t in [*threads, checkpointer]:
        t.start()
    for t in [*threads, checkpointer]:
        t.join()
    assert not errors
    result = log.service.verify()
    assert result.ok, result.reason
    assert (result.rows_checked, result.head_sequence, result.checkpoints_checked) == (60, 60, 5)
