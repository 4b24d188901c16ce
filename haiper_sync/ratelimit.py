"""A client-side request limiter shared by every request of a run."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """At most ``rate`` requests in any ``window`` seconds (a sliding log of reservations).

    Thread-safe and loop-agnostic: ``reserve`` books the next free slot and returns how long
    the caller must wait for it, so the caller sleeps in whatever way suits it.
    """

    def __init__(
        self,
        rate: int,
        window: float = 60.0,
        *,
        margin: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate < 1:
            raise ValueError("rate must be at least 1 request per window")
        self.rate = rate
        # The margin absorbs the gap between our send time and the server's arrival time
        # (0.25 s on a 60 s window: 0.4% of the quota).
        self.window = window + (min(0.25, 0.05 * window) if margin is None else margin)
        self._clock = clock
        self._slots: deque[float] = deque(maxlen=rate)
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Book a slot; return the seconds to wait before sending (0 when free now)."""
        with self._lock:
            now = self._clock()
            start = now
            if len(self._slots) == self.rate:
                start = max(now, self._slots[0] + self.window)
            self._slots.append(start)
            return start - now
