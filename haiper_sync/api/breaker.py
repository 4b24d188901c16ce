"""A circuit breaker: a run whose API is down stops, loudly, instead of failing every ID.

Per-request retries ride out a blip; when every request keeps failing (nothing listens, DNS
or TLS is broken, the API answers only 5xx), retrying each ID in turn would spend the whole
manifest's attempts and end "completed" with an error per ID. The breaker opens when at
least ``threshold`` requests in a row have failed, over at least ``min_seconds``, with no
success in between: a burst of failures from one dropped connection pool does not open it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from haiper_sync.errors import ApiUnreachable
from haiper_sync.settings import DEFAULTS


class CircuitBreaker:
    """Counts consecutive failed requests; `check` raises `ApiUnreachable` once it is open."""

    def __init__(
        self,
        api_url: str,
        *,
        threshold: int = DEFAULTS.breaker_threshold,
        min_seconds: float = DEFAULTS.breaker_seconds,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.api_url = api_url
        self.threshold = threshold
        self.min_seconds = min_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._first_failure = 0.0
        self._last_cause = ""
        self._open: str | None = None  # the reason, once open

    def check(self) -> None:
        """Raise `ApiUnreachable` if the breaker is open (no request should be sent)."""
        if self._open is not None:
            raise ApiUnreachable(self._open, url=self.api_url)

    def succeeded(self) -> None:
        """A request got an answer that proves the API works (anything but a 5xx)."""
        with self._lock:
            if self._open is None:
                self._failures = 0

    def failed(self, cause: str) -> None:
        """A request failed at the transport level or with a 5xx; raise if that opens it."""
        with self._lock:
            now = self._clock()
            if self._failures == 0:
                self._first_failure = now
            self._failures += 1
            self._last_cause = cause
            span = now - self._first_failure
            if self._open is None and self._failures >= self.threshold and span >= self.min_seconds:
                self._open = (
                    f"the API at {self.api_url} is unreachable: {self._failures} requests in a "
                    f"row failed over {span:.1f} s with no success; last: {cause}"
                )
        self.check()
