"""The client-side rate limiter on a fake clock (against the simulator: tests/integration/)."""

from __future__ import annotations

import bisect
import heapq
import random

import pytest

from haiper_sync.api.ratelimit import RateLimiter
from tests.support.fakes import FakeClock

QUOTA, WINDOW = 40, 2.0


def test_never_more_than_rate_in_any_window_as_the_server_counts_over_1000_requests() -> None:
    """Eight workers like the client's pool; the server stamps each request up to 2 s late."""
    clock = FakeClock()
    limiter = RateLimiter(50, window=60.0, margin=0.0, clock=clock)
    rng = random.Random(7)
    stamped: list[float] = []  # when the server counted each request
    events: list[tuple[float, int, object]] = [(rng.uniform(0, 1), 0, None) for _ in range(8)]
    heapq.heapify(events)
    sent = 0
    while events:
        clock.now, kind, slot = heapq.heappop(events)
        if kind == 1:  # an answer arrives: record it, and the worker takes the next request
            limiter.complete(slot)  # type: ignore[arg-type]
        if sent == 1000:
            continue
        if kind == 0 or kind == 1:
            sent += 1
            slot, wait = limiter.reserve()
            server = clock.now + wait + rng.uniform(0.0, 2.0)  # a busy loop on either side
            stamped.append(server)
            heapq.heappush(events, (server + rng.uniform(0.0, 0.5), 1, slot))
    stamped.sort()
    assert len(stamped) == 1000
    for i, t in enumerate(stamped):
        assert bisect.bisect_left(stamped, t + 60.0) - i <= 50
    # And it is not needlessly slow: 1000 requests at 50/min take about 20 windows.
    assert stamped[-1] <= 21 * 60.0


def test_first_burst_is_free_then_waits_for_the_oldest_answer() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, window=10.0, margin=0.0, clock=clock)
    slots = [limiter.reserve() for _ in range(3)]
    assert [wait for _, wait in slots] == [0.0, 0.0, 0.0]
    clock.now = 0.5
    limiter.complete(slots[0][0])  # answered at 0.5: counts until 10.5
    clock.now = 4.0
    _, wait = limiter.reserve()
    assert wait == 6.0  # slot 2 (sent at 0, not yet answered) expires first, at 10
    _, wait = limiter.reserve()
    assert wait == 6.0  # then slot 3, also at 10
    _, wait = limiter.reserve()
    assert wait == 6.5  # then the answered one, at 10.5


def test_margin_widens_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, window=60.0, margin=0.5, clock=clock)
    limiter.reserve()
    assert limiter.reserve()[1] == 60.5


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
