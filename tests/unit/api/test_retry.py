import pickle
import ssl
from datetime import UTC, datetime

import httpx
import pytest

from haiper_sync.api.retry import (
    TRANSIENT_STATUS,
    Action,
    RetryPolicy,
    certificate_never_verifies,
    decide,
    is_transient,
    parse_retry_after,
)
from haiper_sync.errors import (
    ApiUntrusted,
    InvalidResponse,
    RateLimited,
    RequestFailed,
    TransportFailed,
    Unauthorized,
)

URL = "http://api/v1/jobs/x/status"


def failed(status: int) -> RequestFailed:
    return RequestFailed("x", method="GET", url=URL, status_code=status)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_transient_statuses_retry(status: int) -> None:
    assert is_transient(failed(status))
    assert decide(failed(status), 1, RetryPolicy(), 0.0).action is Action.RETRY


def test_transient_statuses_are_408_429_and_every_5xx() -> None:
    transient = {status for status in range(400, 600) if is_transient(failed(status))}
    assert transient == {408, 429} | set(range(500, 600))
    assert transient == TRANSIENT_STATUS | set(range(500, 600))  # the constant says so too


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    assert not is_transient(failed(status))
    assert decide(failed(status), 1, RetryPolicy(), 0.5).action is Action.GIVE_UP


def test_unauthorized_stops_the_run() -> None:
    error = Unauthorized("bad key", method="GET", url=URL, status_code=401)
    assert decide(error, 1, RetryPolicy(), 0.5).action is Action.STOP_RUN


@pytest.mark.parametrize(
    "error",
    [
        TransportFailed("reset", method="GET", url=URL),
        InvalidResponse("truncated", method="GET", url=URL, status_code=200),
    ],
)
def test_transport_and_garbled_bodies_retry(error: Exception) -> None:
    assert decide(error, 1, RetryPolicy(), 0.5).action is Action.RETRY


def test_exhausted_budget_defers_instead_of_looping() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert decide(failed(503), 2, policy, 0.5).action is Action.RETRY
    assert decide(failed(503), 3, policy, 0.5).action is Action.DEFER


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=100.0, jitter=0.5)
    low = [policy.backoff(a, 0.0) for a in (1, 2, 3, 4)]
    high = [policy.backoff(a, 0.999999) for a in (1, 2, 3, 4)]
    assert low == [0.5, 1.0, 2.0, 4.0]
    assert [round(h, 3) for h in high] == [1.0, 2.0, 4.0, 8.0]
    assert policy.backoff(30, 0.5) <= 100.0


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retry_after=60.0, base_delay=0.1)
    hint = RateLimited("slow down", retry_after=7.0, method="GET", url=URL, status_code=429)
    decision = decide(hint, 1, policy, 0.5)
    assert decision.action is Action.RETRY and decision.delay == 7.0
    too_long = RateLimited("later", retry_after=600.0, method="GET", url=URL, status_code=429)
    assert decide(too_long, 1, policy, 0.5).action is Action.DEFER


def test_parse_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("12", now) == 12.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after("Sat, 28 Nov 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sat, 28 Nov 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("", now) is None


def _caused_by(cause: BaseException, *wrappers: BaseException) -> BaseException:
    """The outermost of ``wrappers``, each caused by the next, the last by ``cause``."""
    inner = cause
    for wrapper in reversed(wrappers):
        wrapper.__cause__ = inner
        inner = wrapper
    return inner


def _verify_error(message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    error.verify_message = message
    return error


@pytest.mark.parametrize(
    "message",
    [
        "certificate has expired",
        "unable to get local issuer certificate",
        "self-signed certificate",
        "Hostname mismatch, certificate is not valid for 'api.haiper.ai'.",
    ],
)
def test_a_certificate_verify_failure_anywhere_in_the_chain_is_permanent(message: str) -> None:
    verify = _verify_error(message)
    assert certificate_never_verifies(verify)
    wrapped = _caused_by(verify, httpx.ConnectError("x"), aiohttp_like := OSError("connect"))
    assert aiohttp_like.__cause__ is verify
    assert certificate_never_verifies(wrapped)
    context = httpx.ConnectError("x")
    context.__context__ = verify  # raised while handling it, not "from" it
    assert certificate_never_verifies(context)


@pytest.mark.parametrize(
    "cause",
    [
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
        ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError(),
        httpx.ConnectTimeout("timed out"),
    ],
)
def test_other_tls_and_transport_failures_are_not(cause: BaseException) -> None:
    assert not certificate_never_verifies(_caused_by(cause, httpx.ConnectError("x")))


def test_a_cyclic_chain_ends() -> None:
    first, second = OSError("a"), OSError("b")
    first.__context__, second.__context__ = second, first
    assert not certificate_never_verifies(first)


def test_an_untrusted_api_stops_the_run() -> None:
    error = ApiUntrusted("the API at https://x cannot be trusted: ...", url="https://x")
    assert decide(error, 1, RetryPolicy(), 0.5).action is Action.STOP_RUN
    assert not is_transient(error)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ApiUntrusted and copy.url == "https://x" and str(copy) == str(error)
