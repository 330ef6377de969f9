"""The clock the lease, backoff, retention and TTL code reads: the real one, and the one tests move by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ragstore.clock import SYSTEM_CLOCK, Clock, ManualClock


def test_a_manual_clock_moves_only_when_told_and_both_readings_together() -> None:
    start = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    clock = ManualClock(start)
    before = clock.monotonic()
    assert clock.now() == start and clock.monotonic() == before
    clock.advance(90.5)
    assert clock.now() == start + timedelta(seconds=90.5)
    assert clock.monotonic() == pytest.approx(before + 90.5)
    with pytest.raises(ValueError):
        clock.advance(-1)  # a monotonic reading never decreases
    with pytest.raises(ValueError):
        ManualClock(datetime(2030, 1, 1))  # naive times would compare wrongly with stored aware ones


def test_a_manual_clock_starts_at_the_real_time_so_rows_written_before_it_are_not_in_its_future() -> None:
    written = SYSTEM_CLOCK.now()
    clock = ManualClock()
    assert written <= clock.now() <= SYSTEM_CLOCK.now()
    assert clock.now().tzinfo is not None


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(SYSTEM_CLOCK, Clock) and isinstance(ManualClock(), Clock)
    first = SYSTEM_CLOCK.monotonic()
    assert SYSTEM_CLOCK.monotonic() >= first and SYSTEM_CLOCK.now().tzinfo is not None
