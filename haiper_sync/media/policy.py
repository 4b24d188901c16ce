"""Download decisions as pure functions: retry or not, which redirect to follow, bandwidth waits.

Same shape as `haiper_sync.api.retry`: (error, attempt, draw, clock) in, a decision out.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

from haiper_sync.api.retry import Action, Decision, RetryPolicy
from haiper_sync.errors import LinkExpired, MediaError

MAX_REDIRECTS = 3
# A CDN answers these for a link whose signature expired or was never valid.
REFUSED_STATUS = frozenset({400, 401, 403, 410})
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def status_error(status: int, label: str) -> MediaError:
    """The typed failure for a CDN's non-200 answer."""
    if status in REFUSED_STATUS:
        return LinkExpired(f"{label}: the CDN refused the link (HTTP {status})", http_status=status)
    transient = status in TRANSIENT_STATUS or status >= 500
    return MediaError(f"{label}: HTTP {status}", transient=transient, http_status=status)


def decide_download(error: MediaError, attempt: int, policy: RetryPolicy, draw: float) -> Decision:
    """What follows failed download attempt ``attempt`` (1-based) of one file."""
    if isinstance(error, LinkExpired) or not error.transient:
        return Decision(Action.GIVE_UP)
    if attempt >= policy.max_attempts:
        return Decision(Action.DEFER)
    return Decision(Action.RETRY, policy.backoff(attempt, draw))


def is_web_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host (nothing else is ever requested)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def next_hop(current: str, location: str | None, hops: int, label: str) -> str:
    """The URL a redirect leads to, if it may be followed; else raise `MediaError`.

    At most `MAX_REDIRECTS`; only to https or to the same scheme, host and port, so a signed
    link is never sent in clear to a host the CDN did not name over TLS.
    """
    if not location:
        raise MediaError(f"{label}: redirect without a Location")
    if hops >= MAX_REDIRECTS:
        raise MediaError(f"{label}: more than {MAX_REDIRECTS} redirects")
    target = urljoin(current, location)
    if not is_web_url(target):
        raise MediaError(f"{label}: redirect to a non-http(s) URL refused")
    here, there = urlsplit(current), urlsplit(target)
    same_origin = (here.scheme, here.hostname, here.port) == (
        there.scheme,
        there.hostname,
        there.port,
    )
    if there.scheme != "https" and not same_origin:
        raise MediaError(f"{label}: redirect to plain http on another host refused")
    return target


class Bandwidth:
    """A shared bytes-per-second cap as a token bucket; `reserve` says how long to wait."""

    def __init__(self, rate: int, clock: Callable[[], float], burst_seconds: float = 0.25):
        self.rate = rate
        self._clock = clock
        self._burst = rate * burst_seconds
        self._available = self._burst
        self._at = clock()

    def reserve(self, n: int) -> float:
        """Take ``n`` bytes' worth of budget; return the seconds to wait before sending them."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        self._available = min(self._burst, self._available + (now - self._at) * self.rate)
        self._at = now
        self._available -= n
        return 0.0 if self._available >= 0 else -self._available / self.rate
