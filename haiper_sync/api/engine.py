"""A run's HTTP engine: one event loop thread owning one client, limiter and circuit breaker.

Prefect runs a flow's tasks in worker threads. Routing every task's requests through the run's
engine makes ``concurrency`` and ``rate_limit`` hold for the whole run, however many chunks are
in flight, and keeps keep-alive connections warm between chunks. The run opens its engine as a
context manager and closes it at its end; nothing is shared between runs.

On Dask the engine cannot travel to a worker process: each worker opens its own for the run
(`open_worker_engine`, called on every worker by the flow's runner), and an engine handed to a
task there arrives as a `WorkerEngine` naming it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import SecretStr

from haiper_sync.api.breaker import CircuitBreaker
from haiper_sync.api.budget import RequestBudget
from haiper_sync.api.client import HaiperClient, Timeouts
from haiper_sync.api.network import Network
from haiper_sync.api.ratelimit import RateLimiter
from haiper_sync.api.retry import RetryPolicy
from haiper_sync.errors import HaiperSyncError
from haiper_sync.settings import DEFAULTS, Settings

T = TypeVar("T")


class EngineClosed(HaiperSyncError):
    """Work was handed to an engine after its run began shutting down."""


@dataclass(frozen=True)
class ApiConfig:
    """Everything needed to talk to the API except the key (safe to log, pickle, persist)."""

    api_url: str
    concurrency: int = DEFAULTS.concurrency
    rate_limit: int = DEFAULTS.rate_limit
    rate_window: float = DEFAULTS.rate_window
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    network: Network = field(default_factory=Network)
    breaker_threshold: int = DEFAULTS.breaker_threshold
    breaker_seconds: float = DEFAULTS.breaker_seconds
    max_requests: int | None = None  # the run's request budget (None: no budget)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        api_url: str,
        concurrency: int,
        rate_limit: int,
        max_requests: int | None = None,
        processes: int = 1,
    ) -> ApiConfig:
        """The run's config: the flow's parameters, the rest from ``settings``.

        With several fetching ``processes`` (Dask workers), each with its own limiter and
        connection pool, concurrency, rate limit and budget are split evenly among them, so the
        run as a whole stays within what it was given.
        """
        return cls(
            api_url=api_url,
            concurrency=max(1, concurrency // processes),
            rate_limit=max(1, rate_limit // processes),
            rate_window=settings.rate_window,
            timeouts=Timeouts(
                connect=settings.connect_timeout,
                read=settings.read_timeout,
                deadline=settings.request_deadline,
            ),
            retry=RetryPolicy(
                max_attempts=settings.max_attempts, max_retry_after=settings.max_retry_after
            ),
            network=Network(
                backend=settings.http_backend, proxy=settings.proxy, ca_bundle=settings.ca_bundle
            ),
            breaker_threshold=settings.breaker_threshold,
            breaker_seconds=settings.breaker_seconds,
            max_requests=None if max_requests is None else max(1, max_requests // processes),
        )


class HttpEngine:
    """An event loop in a daemon thread that owns one `HaiperClient`; close it when done."""

    def __init__(self, config: ApiConfig, api_key: SecretStr) -> None:
        self.config = config
        self.token = uuid.uuid4().hex
        self._closed = False
        self._lock = threading.Lock()
        self.breaker = CircuitBreaker(
            config.api_url, threshold=config.breaker_threshold, min_seconds=config.breaker_seconds
        )
        self.budget = RequestBudget(config.max_requests)
        # IDs of the chunks in flight that need nothing more: progress between chunk writes.
        self.ids_done = 0
        # Built before the thread starts: a bad proxy or CA bundle fails here, in the caller.
        self.client = HaiperClient(
            config.api_url,
            api_key,
            concurrency=config.concurrency,
            limiter=RateLimiter(config.rate_limit, config.rate_window),
            breaker=self.breaker,
            budget=self.budget,
            timeouts=config.timeouts,
            network=config.network,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="haiper-http", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> HttpEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[object, ...]:
        # Only the token travels (to a Dask worker, which has its own engine for the run).
        return (WorkerEngine, (self.token, self.config))

    def run(self, work: Callable[[HaiperClient], Awaitable[T]]) -> T:
        """Run ``work(client)`` on the engine's loop and wait for its result."""

        async def call() -> T:
            return await work(self.client)

        with self._lock:
            if self._closed:
                raise EngineClosed("the run's HTTP engine is closed (the run is ending)")
            future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        return future.result()

    def count_done(self, ids: int) -> None:
        """Count ``ids`` more IDs answered for good (called on the engine's loop only)."""
        self.ids_done += ids

    @property
    def rate_limited(self) -> bool:
        """True while requests wait for their turn in the rate limit."""
        return self.client.rate_limited_until > time.monotonic()

    def close(self) -> None:
        """Cancel work still in flight, close the connections and stop the loop thread.

        A run that fails (a 401) closes the engine while other chunks still wait on it:
        cancelling their requests makes those tasks fail promptly instead of waiting forever.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True

        async def shutdown() -> None:
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self.client.aclose()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


# Dask worker processes only: the engines of the runs in progress, by engine token.
_worker_engines: dict[str, HttpEngine] = {}
_worker_lock = threading.Lock()


def open_worker_engine(token: str, config: ApiConfig, api_key: SecretStr) -> None:
    """Open this worker process's engine for the run whose engine has ``token``."""
    with _worker_lock:
        if token not in _worker_engines:
            _worker_engines[token] = HttpEngine(config, api_key)


def close_worker_engine(token: str) -> None:
    """Close this worker process's engine for that run (the run is over)."""
    with _worker_lock:
        engine = _worker_engines.pop(token, None)
    if engine is not None:
        engine.close()


@dataclass(frozen=True)
class WorkerEngine:
    """The run's engine as a task on a Dask worker receives it: resolved when it is used."""

    token: str
    config: ApiConfig

    def run(self, work: Callable[[HaiperClient], Awaitable[T]]) -> T:
        """Run ``work(client)`` on this worker process's engine for the run."""
        return self._engine().run(work)

    def count_done(self, ids: int) -> None:
        """Counted on the worker: the flow's progress sees only written chunks from Dask."""
        self._engine().count_done(ids)

    def _engine(self) -> HttpEngine:
        with _worker_lock:
            engine = _worker_engines.get(self.token)
        if engine is None:
            raise EngineClosed("this process has no open HTTP engine for the run")
        return engine
