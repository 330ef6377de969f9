"""Fault injection (bench/crash_harness.py): a child process ingests and deletes documents and is killed with
SIGKILL at random instants; after each kill the reopened store has every acknowledged document, whole and
searchable, returns no deleted one, and its consistency check finds nothing. `python bench/crash_harness.py`
is the long version (200 kill points, a table).

The operations follow from the seed (RAGSTORE_TEST_CRASH_SEED overrides it); where each kill lands is real
time, so every run probes other instants. A failure names the seed, the kill point and what was asserted.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from crash_harness import Harness, KillPoint

SEED = int(os.environ.get("RAGSTORE_TEST_CRASH_SEED", "20240917"))
# Shorter waits than the long run's 0.3-3 s: more kill points in the time, still dozens of calls each.
WAIT_S = (0.1, 1.0)
SAMPLE = 25  # older documents searched per kill point


def replay(kills: int) -> str:
    """The bench command that runs the same operations and waits (the kill instants are real time)."""
    return (
        f"python bench/crash_harness.py --seed {SEED} --kills {kills} "
        f"--min-wait {WAIT_S[0]} --max-wait {WAIT_S[1]} --sample {SAMPLE}"
    )


def assert_recovered(results: list[KillPoint], kills: int, command: str) -> None:
    failures = [f for r in results for f in r.failures]
    assert not failures, (
        f"{len(failures)} failures (seed {SEED}; replay with RAGSTORE_TEST_CRASH_SEED={SEED}, or {command}):\n"
        + "\n".join(failures[:20])
    )
    assert len(results) == kills
    # The kills landed in a busy child: it acknowledged adds and deletes, and calls were cut short.
    assert sum(r.adds_acked for r in results) > kills, f"seed {SEED}: {results}"
    assert sum(r.deletes_acked for r in results) > 0, f"seed {SEED}: {results}"
    assert sum(r.half_present + r.half_absent for r in results) > 0, f"seed {SEED}: no kill landed inside a call"
    assert all(r.problems == 0 for r in results)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_random_kills_on_the_embedded_index(tmp_path: Path, database_url: str | None) -> None:
    kills = 25
    harness = Harness(tmp_path / "data", "embedded", database_url, seed=SEED, wait_s=WAIT_S, sample=SAMPLE)
    results = harness.run(kills)
    db = " --database-url URL" if database_url else ""
    assert_recovered(results, kills, f"{replay(kills)}{db}")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_random_kills_on_milvus_lite(tmp_path: Path) -> None:
    pytest.importorskip("milvus_lite")
    kills = 10
    harness = Harness(tmp_path / "data", "milvus", None, seed=SEED, wait_s=WAIT_S, sample=SAMPLE)
    results = harness.run(kills)
    assert_recovered(results, kills, f"{replay(kills)} --backend milvus")
