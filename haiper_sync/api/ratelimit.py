"""A client-side request limiter shared by every request of a run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from haiper_sync.settings import DEFAULTS


class Slot:
    """One request's place in the window; `RateLimiter.complete` moves it to the answer's time."""

    __slots__ = ("time",)

    def __init__(self, at: float) -> None:
        self.time = at


class RateLimiter:
    """At most ``rate`` requests in any ``window`` seconds, as the server counts them.

    A sliding log of the last ``rate`` requests. Each entry starts at the request's send time
    and is moved to the time its answer arrived (`complete`): the server counted the request
    somewhere in between, so a new request waits until the earliest of those answers is a full
    window old. That makes the guarantee hold however late a busy event loop sends a request,
    or a busy server stamps it. Thread-safe and loop-agnostic: `reserve` returns how long the
    caller must wait, and the caller sleeps in whatever way suits it.
    """

    def __init__(
        self,
        rate: int,
        window: float = DEFAULTS.rate_window,
        *,
        margin: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate < 1:
            raise ValueError("rate must be at least 1 request per window")
        self.rate = rate
        # A little slack for clock granularity (0.1 s of a 60 s window).
        self.window = window + (min(0.1, 0.01 * window) if margin is None else margin)
        self._clock = clock
        self._slots: list[Slot] = []
        self._lock = threading.Lock()

    def reserve(self) -> tuple[Slot, float]:
        """Book a slot; return it and the seconds to wait before sending (0 when free now)."""
        with self._lock:
            now = self._clock()
            start = now
            if len(self._slots) >= self.rate:
                oldest = min(self._slots, key=lambda slot: slot.time)
                self._slots.remove(oldest)
                start = max(now, oldest.time + self.window)
            slot = Slot(start)
            self._slots.append(slot)
            return slot, start - now

    def complete(self, slot: Slot) -> None:
        """Record that the request of ``slot`` got its answer (or failed) now."""
        with self._lock:
            slot.time = max(slot.time, self._clock())
