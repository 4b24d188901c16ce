"""A run's request budget: a share of the API's quota the run may spend, and no more."""

from __future__ import annotations

import threading


class RequestBudget:
    """At most ``limit`` requests (None: no limit); `take` is atomic, so it is never exceeded."""

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit < 0:
            raise ValueError("a request budget cannot be negative")
        self.limit = limit
        self.spent = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Count one request about to be sent; False (and nothing counted) if none is left."""
        with self._lock:
            if self.limit is not None and self.spent >= self.limit:
                return False
            self.spent += 1
            return True

    @property
    def exhausted(self) -> bool:
        """True once every request of the budget was taken."""
        return self.limit is not None and self.spent >= self.limit
