"""Simulator configuration and thread-safe request counters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from haiper_sync.simulator.faults import parse_fault, parse_media_fault

ENDPOINTS = ("status", "detail")


@dataclass
class SimulatorConfig:
    """Knobs of the simulated API; the app reads them per request, so they may change live."""

    api_keys: frozenset[str] = frozenset({"sim-demo-key"})
    latency_ms: float = 0.0
    epoch: int = 0
    rate_limit_per_minute: int | None = None
    # The real API counts per minute; tests shrink the window to see many windows quickly.
    rate_window_seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    fault_seed: int = 0
    p_429: float = 0.0
    p_500: float = 0.0
    p_reset: float = 0.0
    p_slow: float = 0.0
    slow_seconds: float = 2.0
    p_truncated: float = 0.0
    # The detail of a creation that has not finished: "400" (Haiper's error body, as the docs
    # imply) or "200" (a body carrying the unfinished status).
    unfinished_detail: str = "400"
    # Engagement moves on its own clock: each step adds 0-2 likes and 0-1 collects to a creation
    # (deterministic per ID), so a re-fetch can see them change.
    engagement_step: int = 0
    # "<id>" -> both endpoints; "status:<id>" / "detail:<id>" -> one endpoint.
    # Values: a kind from faults.FAULT_KINDS, optionally "*N" for the first N requests only.
    id_faults: dict[str, str] = field(default_factory=dict)
    # Serve media: None keeps the detail's links on a fake CDN (nothing to download); seconds
    # make them signed links to this server's /media/ route that answer 403 after that long.
    media_ttl: float | None = None
    # Wall time, for the links' Expires= (tests move it to expire links without waiting).
    wall_clock: Callable[[], float] = time.time
    # "<path under /media/>" or "<creation_id>" -> size in bytes (e.g. one large file).
    media_sizes: dict[str, int] = field(default_factory=dict)
    # "<path under /media/>" or "<creation_id>" -> a kind of faults.MEDIA_FAULT_KINDS, "*N" ok.
    media_faults: dict[str, str] = field(default_factory=dict)
    # Every file's default size (`data.media_size`) times this: the demo keeps its archive to a
    # few tens of MB with 0.05 (media_sizes and a link's size= are taken as they are).
    media_scale: float = 1.0

    def __post_init__(self) -> None:
        # Fail at construction, not on the first matching request deep inside the server.
        for spec in self.id_faults.values():
            parse_fault(spec)
        for spec in self.media_faults.values():
            parse_media_fault(spec)
        if self.media_ttl is not None and self.media_ttl <= 0:
            raise ValueError("media_ttl must be > 0 or None")
        if not 0 < self.media_scale <= 1000:
            raise ValueError("media_scale must be within (0, 1000]")
        total = self.p_429 + self.p_500 + self.p_reset + self.p_truncated
        for name in ("p_429", "p_500", "p_reset", "p_slow", "p_truncated"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if total > 1.0:
            raise ValueError("p_429 + p_500 + p_reset + p_truncated must not exceed 1")
        if self.unfinished_detail not in ("400", "200"):
            raise ValueError('unfinished_detail must be "400" or "200"')
        if self.rate_limit_per_minute is not None and self.rate_limit_per_minute < 1:
            raise ValueError("rate_limit_per_minute must be >= 1 or None")


class SimulatorStats:
    """Counters of API requests (admin routes excluded); safe to read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._by_endpoint: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._per_id: dict[str, Counter[str]] = {e: Counter() for e in ENDPOINTS}
        self._resets = 0
        self._media: Counter[str] = Counter()
        self._media_status: Counter[int] = Counter()
        self._media_authorized = 0

    def record_media(self, path: str, status_code: int, authorized: bool) -> None:
        """Count one media request, its answer, and whether it carried an Authorization."""
        with self._lock:
            self._media[path] += 1
            self._media_status[status_code] += 1
            self._media_authorized += int(authorized)

    def media_requests(self, path: str | None = None) -> int:
        """Media requests for one path under /media/, or for all."""
        with self._lock:
            return self._media[path] if path is not None else sum(self._media.values())

    def media_snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of the media counters."""
        with self._lock:
            return {
                "requests": sum(self._media.values()),
                "with_authorization": self._media_authorized,
                "by_status": {str(k): v for k, v in sorted(self._media_status.items())},
                "per_path": dict(self._media),
            }

    def record_request(self, endpoint: str, creation_id: str) -> None:
        """Count one incoming API request."""
        with self._lock:
            self._total += 1
            self._by_endpoint[endpoint] += 1
            self._per_id.setdefault(endpoint, Counter())[creation_id] += 1

    def record_status(self, status_code: int) -> None:
        """Count one response by HTTP status code."""
        with self._lock:
            self._by_status[status_code] += 1

    def record_reset(self) -> None:
        """Count one connection dropped without a response."""
        with self._lock:
            self._resets += 1

    def requests_for(self, endpoint: str, creation_id: str) -> int:
        """How many requests one (endpoint, creation_id) pair received."""
        with self._lock:
            return self._per_id.get(endpoint, Counter())[creation_id]

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of all counters (status-code keys are strings)."""
        with self._lock:
            return {
                "total": self._total,
                "by_endpoint": {e: self._by_endpoint[e] for e in ENDPOINTS},
                "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "rate_limited": self._by_status[429],
                "connection_resets": self._resets,
                "per_id": {e: dict(c) for e, c in self._per_id.items()},
            }

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._total = 0
            self._by_endpoint.clear()
            self._by_status.clear()
            self._per_id = {e: Counter() for e in ENDPOINTS}
            self._resets = 0
            self._media.clear()
            self._media_status.clear()
            self._media_authorized = 0
