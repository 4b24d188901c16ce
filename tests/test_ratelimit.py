import bisect
import random

import pytest

from haiper_sync.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_never_more_than_rate_in_any_window_over_1000_requests() -> None:
    clock = FakeClock()
    limiter = RateLimiter(50, window=60.0, margin=0.0, clock=clock)
    rng = random.Random(7)
    sent: list[float] = []
    for _ in range(1000):
        clock.now += rng.choice([0.0, 0.0, 0.01, 0.5, 3.0])
        start = clock.now + limiter.reserve()
        sent.append(start)
    sent.sort()
    for i, t in enumerate(sent):
        in_window = bisect.bisect_left(sent, t + 60.0) - i
        assert in_window <= 50
    # And it is not needlessly slow: 1000 requests at 50/min take about 19 windows.
    assert sent[-1] <= 20 * 60.0


def test_first_burst_is_free_then_waits_for_the_oldest_slot() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, window=10.0, margin=0.0, clock=clock)
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.reserve() == 10.0
    clock.now = 4.0
    assert limiter.reserve() == 6.0  # the second slot frees at t=10 as well


def test_margin_widens_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, window=60.0, margin=0.5, clock=clock)
    limiter.reserve()
    assert limiter.reserve() == 60.5


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
