"""How long `store.audit.verify()` takes and how much memory it holds, by log length (SQLite or DATABASE_URL).

    python bench/audit_verify.py [ROWS ...]      # default 10000 100000

Rows are written in bulk with correct hashes (as appends would make them), then verified once; the peak is
Python's traced allocation during a second verification, which must not grow with the log.
"""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.db.security_models import AuditLog
from ragstore.migrations import Migrator
from ragstore.security.audit import GENESIS_HASH, row_hash
from ragstore.security.audit_verify import verify_log
from ragstore.security.checkpoints import Checkpoints, signer_from_settings


def fill(db: Database, rows: int) -> None:
    previous = GENESIS_HASH
    start = datetime(2026, 1, 1, tzinfo=UTC)
    batch: list[dict[str, object]] = []
    for sequence in range(1, rows + 1):
        fields: dict[str, object] = {
            "sequence": sequence,
            "created_at": start + timedelta(seconds=sequence),
            "actor": "cli:bench",
            "action": "document.delete",
            "target": f"kb/{sequence}",
            "outcome": "success",
            "request_id": "",
            "client_address": "",
            "details": {"n": sequence},
            "previous_hash": previous,
        }
        previous = row_hash(**fields)  # type: ignore[arg-type]
        batch.append({**fields, "row_hash": previous})
        if len(batch) == 5000 or sequence == rows:
            with db.engine.begin() as c:
                c.execute(AuditLog.__table__.insert(), batch)
            batch = []


def main(sizes: list[int]) -> None:
    print("| rows | verify s | rows/s | peak traced MiB |")
    print("|---:|---:|---:|---:|")
    for rows in sizes:
        with tempfile.TemporaryDirectory() as folder:
            settings = Settings(data_dir=Path(folder), auth="off")
            db = Database(settings)
            Migrator(db.engine).ensure_current(auto_upgrade=True)
            fill(db, rows)
            signer = signer_from_settings(settings)
            Checkpoints(db, signer).write()
            started = time.perf_counter()
            result = verify_log(db, signer)
            took = time.perf_counter() - started
            tracemalloc.start()  # a second run for the memory: tracing slows Python down several times
            verify_log(db, signer)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert result.ok and result.rows_checked == rows, result
            print(f"| {rows:,} | {took:.2f} | {rows / took:,.0f} | {peak / 2**20:.1f} |")
            db.dispose()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10_000, 100_000])
