"""The in-process sliding-window counter (security/window_counter.py), on explicit times: the algorithm of
`limits`' SlidingWindowCounter, answered in one call."""

from __future__ import annotations

import pytest

from ragstore.security.window_counter import ADMITTED, BUSY, OVER_LIMIT, SlidingWindowCounter

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


def test_a_lane_admits_what_take_would_and_shares_its_counts() -> None:
    counter = SlidingWindowCounter()
    lane = counter.lane("key:7", 5, WINDOW, cap=10, now=T0)
    headers = lane.enter(1, now=T0 + 1)
    assert headers == [(b"ratelimit-limit", b"5"), (b"ratelimit-remaining", b"4"), (b"ratelimit-reset", b"59")]
    assert counter.in_flight("key:7") == 1
    lane.leave()
    assert counter.in_flight("key:7") == 0
    # The lane and `take` count the same budget: 1 + 3 through the lane and `take`, one left.
    for _ in range(2):
        assert lane.enter(1, now=T0 + 2) is not None
        lane.leave()
    assert counter.take("key:7", 5, WINDOW, 1, 10, now=T0 + 3)[0] == ADMITTED
    counter.leave("key:7")
    assert lane.enter(1, now=T0 + 4) is not None
    lane.leave()
    # Over the budget the lane admits nothing and takes nothing: `take` answers the refusal.
    assert lane.enter(1, now=T0 + 5) is None
    verdict, remaining, _, retry = counter.take("key:7", 5, WINDOW, 1, 10, now=T0 + 5)
    assert (verdict, remaining) == (OVER_LIMIT, 0) and retry > 0
    assert counter.in_flight("key:7") == 0


def test_a_lane_sends_a_new_window_and_a_full_cap_to_take() -> None:
    counter = SlidingWindowCounter()
    lane = counter.lane("key:8", 100, WINDOW, cap=2, now=T0)
    assert lane.enter(1, now=T0 + 1) is not None and lane.enter(1, now=T0 + 1) is not None
    assert lane.enter(1, now=T0 + 1) is None  # two in flight: the cap
    assert counter.take("key:8", 100, WINDOW, 1, 2, now=T0 + 1)[0] == BUSY
    lane.leave()
    lane.leave()
    assert lane.enter(1, now=T0 + 61) is None  # the next window: `take` rolls it, then the lane goes on
    assert counter.take("key:8", 100, WINDOW, 1, 2, now=T0 + 61)[0] == ADMITTED
    counter.leave("key:8")
    # 2 of the window before, weighted by the 59/60 of it still inside the sliding window, and 2 of this one
    assert lane.enter(1, now=T0 + 61) == [
        (b"ratelimit-limit", b"100"),
        (b"ratelimit-remaining", b"96"),
        (b"ratelimit-reset", b"59"),
    ]
    lane.leave()


def test_a_lane_of_a_swept_bucket_hands_over_to_take_which_starts_it_again() -> None:
    counter = SlidingWindowCounter()
    lane = counter.lane("key:9", 10, WINDOW, cap=5, now=T0)
    assert lane.enter(1, now=T0 + 1) is not None
    lane.leave()
    counter.hit("addr:10.0.0.1", 10, WINDOW, now=T0 + 3600)  # an hour later the sweep drops key:9
    assert counter.in_flight("key:9") == 0 and len(counter) == 1
    assert lane.enter(1, now=T0 + 3601) is None
    assert counter.take("key:9", 10, WINDOW, 1, 5, now=T0 + 3601)[:2] == (ADMITTED, 9)
    counter.leave("key:9")


def test_a_bucket_with_requests_in_flight_is_never_swept() -> None:
    counter = SlidingWindowCounter()
    assert counter.take("key:10", 10, WINDOW, 1, 5, now=T0)[0] == ADMITTED  # its slot held
    counter.hit("addr:10.0.0.1", 10, WINDOW, now=T0 + 3600)
    assert counter.in_flight("key:10") == 1
    counter.leave("key:10")
    assert counter.in_flight("key:10") == 0
