"""The in-process sliding-window counter (security/window_counter.py), on explicit times: the algorithm of
`limits`' SlidingWindowCounter, answered in one call."""

from __future__ import annotations

import pytest

from ragstore.security.window_counter import SlidingWindowCounter

WINDOW = 60.0
T0 = 6_000_000.0  # the start of a window (a multiple of 60)


def test_a_budget_is_spent_then_refused_with_the_time_it_frees() -> None:
    counter = SlidingWindowCounter()
    answers = [counter.hit("key:1", 10, WINDOW, now=T0 + 1) for _ in range(10)]
    assert all(a.allowed for a in answers) and [a.remaining for a in answers] == list(range(9, -1, -1))
    refused = counter.hit("key:1", 10, WINDOW, now=T0 + 2)
    assert not refused.allowed and refused.remaining == 0
    assert refused.reset_s == pytest.approx(58.0)
    # All ten were spent in this window: the next window weighs them by what still overlaps, so one more
    # fits once a tenth of the next window has gone by.
    assert refused.retry_after_s == pytest.approx(58.0 + 6.0)
    assert not counter.hit("key:1", 10, WINDOW, now=T0 + 60 + 5.9).allowed
    assert counter.hit("key:1", 10, WINDOW, now=T0 + 60 + 6.1).allowed


def test_the_previous_window_weighs_by_its_overlap_so_no_double_burst_at_the_edge() -> None:
    counter = SlidingWindowCounter()
    for _ in range(10):
        assert counter.hit("a", 10, WINDOW, now=T0 + 59).allowed
    # Just after the edge the previous window still counts almost whole: a fixed window would allow 10 more.
    assert not counter.hit("a", 10, WINDOW, now=T0 + 61).allowed
    assert counter.remaining("a", 10, WINDOW, now=T0 + 90) == 5
    assert counter.remaining("a", 10, WINDOW, now=T0 + 200) == 10  # two windows later: whole again


def test_a_cost_takes_several_units_or_nothing() -> None:
    counter = SlidingWindowCounter()
    assert counter.hit("b", 10, WINDOW, cost=8, now=T0).allowed
    refused = counter.hit("b", 10, WINDOW, cost=3, now=T0 + 1)
    assert not refused.allowed and refused.remaining == 2  # nothing taken by the refusal
    assert counter.hit("b", 10, WINDOW, cost=2, now=T0 + 1).allowed


def test_buckets_are_separate_and_idle_ones_are_swept() -> None:
    counter = SlidingWindowCounter()
    counter.hit("addr:10.0.0.1", 1, WINDOW, now=T0)
    assert counter.hit("addr:10.0.0.2", 1, WINDOW, now=T0).allowed
    assert len(counter) == 2
    counter.hit("addr:10.0.0.3", 1, WINDOW, now=T0 + 3600)  # an hour later the sweep is due
    assert len(counter) == 1
