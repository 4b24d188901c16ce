"""The retry policy: which failures are worth another request, and how long to wait first.

Pure functions of (error, attempt, random draw, clock): testable without sleeping.
"""

from __future__ import annotations

import email.utils
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from haiper_sync import errors
from haiper_sync.settings import DEFAULTS

# The 4xx statuses worth another request (a timeout, too many requests); every 5xx is too.
TRANSIENT_STATUS = frozenset({408, 429})
# Nothing else can succeed either: the key is refused, or the API cannot be reached at all.
STOPS_THE_RUN = (errors.Unauthorized, errors.ApiUnreachable)


def certificate_never_verifies(error: BaseException) -> bool:
    """True when ``error`` or one of its causes is a failed TLS certificate verification.

    An unknown CA, an expired certificate, another host's name: the same certificate comes
    back on every connection, so retrying only spends requests until the breaker opens. A
    handshake cut short (reset, EOF, timeout) is not one of these: it may well pass next time.
    """
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.append(current)
        current = current.__cause__ or current.__context__
    return False


class Action(Enum):
    """What to do after a failed attempt."""

    RETRY = "retry"  # wait `delay` seconds, then try again
    DEFER = "defer"  # leave the ID for the next run; it stays non-terminal
    GIVE_UP = "give_up"  # a permanent failure for this ID: record it, go on
    STOP_RUN = "stop_run"  # nothing else can succeed either (bad key, API unreachable)
    SKIP = "skip"  # not sent (the run's request budget is spent): the ID waits for the next run


@dataclass(frozen=True)
class Decision:
    """The outcome of `decide`."""

    action: Action
    delay: float = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in attempts and in honoured Retry-After."""

    max_attempts: int = DEFAULTS.max_attempts
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = DEFAULTS.max_retry_after
    jitter: float = 0.5

    def backoff(self, attempt: int, draw: float) -> float:
        """Delay before attempt ``attempt + 1``; ``draw`` is a uniform number in [0, 1)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling * (1 - self.jitter) + ceiling * self.jitter * draw


def is_transient(error: BaseException) -> bool:
    """True when the same request may well succeed if sent again later."""
    if isinstance(error, (*STOPS_THE_RUN, errors.ResponseTooLarge, errors.BudgetSpent)):
        return False
    if isinstance(error, errors.TransportFailed | errors.InvalidResponse | errors.RateLimited):
        return True
    if isinstance(error, errors.RequestFailed):
        return error.status_code is not None and (
            error.status_code in TRANSIENT_STATUS or error.status_code >= 500
        )
    return False


def decide(error: BaseException, attempt: int, policy: RetryPolicy, draw: float) -> Decision:
    """Decide what follows failed attempt number ``attempt`` (1-based)."""
    if isinstance(error, STOPS_THE_RUN):
        return Decision(Action.STOP_RUN)
    if isinstance(error, errors.BudgetSpent):
        return Decision(Action.SKIP)
    if not is_transient(error):
        return Decision(Action.GIVE_UP)
    if attempt >= policy.max_attempts:
        return Decision(Action.DEFER)
    delay = policy.backoff(attempt, draw)
    if isinstance(error, errors.RateLimited) and error.retry_after is not None:
        if error.retry_after > policy.max_retry_after:
            # Waiting that long would stall the run; the next run picks the ID up.
            return Decision(Action.DEFER)
        delay = max(delay, error.retry_after)
    return Decision(Action.RETRY, delay)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN guard
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())
