"""The circuit breaker as a pure object: a fake clock, no sleeping."""

from __future__ import annotations

import pickle

import pytest

from haiper_sync.api.breaker import CircuitBreaker
from haiper_sync.api.retry import Action, RetryPolicy, decide, is_transient
from haiper_sync.errors import ApiUnreachable
from tests.support.fakes import FakeClock

URL = "https://api.example"


def test_opens_after_threshold_failures_spanning_min_seconds() -> None:
    clock = FakeClock(100.0)
    breaker = CircuitBreaker(URL, threshold=3, min_seconds=10, clock=clock)
    breaker.failed("connection refused")
    breaker.failed("connection refused")
    breaker.failed("connection refused")  # three in a row, but within one instant: a blip
    breaker.check()
    clock.now += 10
    with pytest.raises(ApiUnreachable) as caught:
        breaker.failed("connection refused")
    message = str(caught.value)
    assert URL in message and "4 requests in a row" in message and "connection refused" in message
    assert caught.value.url == URL
    with pytest.raises(ApiUnreachable):
        breaker.check()


def test_a_success_resets_the_count_and_the_span() -> None:
    clock = FakeClock(100.0)
    breaker = CircuitBreaker(URL, threshold=3, min_seconds=10, clock=clock)
    for _ in range(2):
        breaker.failed("HTTP 503")
        clock.now += 30
    breaker.succeeded()  # without it, the next failure would be the third in 60 s
    breaker.failed("HTTP 503")
    breaker.failed("HTTP 503")
    clock.now += 60
    breaker.check()  # two failures since the success: still closed
    with pytest.raises(ApiUnreachable):
        breaker.failed("HTTP 503")


def test_once_open_a_success_does_not_close_it() -> None:
    breaker = CircuitBreaker(URL, threshold=1, min_seconds=0, clock=FakeClock(100.0))
    with pytest.raises(ApiUnreachable):
        breaker.failed("DNS lookup failed")
    breaker.succeeded()
    with pytest.raises(ApiUnreachable):
        breaker.check()


def test_unreachable_stops_the_run_and_pickles() -> None:
    error = ApiUnreachable("the API at x is unreachable", url="x")
    assert decide(error, 1, RetryPolicy(), 0.5).action is Action.STOP_RUN
    assert not is_transient(error)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.url == "x"


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(URL, threshold=0)
