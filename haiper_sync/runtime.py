"""A process-wide HTTP engine: one event loop thread, one client pool, one limiter per API config.

Prefect runs tasks in worker threads (or Dask processes). Routing every task's requests through
one loop per process makes ``concurrency`` and ``rate_limit`` hold for the whole process, however
many chunks are in flight, and keeps keep-alive connections warm between chunks.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import SecretStr

from haiper_sync.client import HaiperClient, Timeouts
from haiper_sync.errors import HaiperSyncError
from haiper_sync.ratelimit import RateLimiter
from haiper_sync.retry import RetryPolicy

T = TypeVar("T")


class EngineClosed(HaiperSyncError):
    """Work was handed to an engine after its run began shutting down."""


@dataclass(frozen=True)
class ApiConfig:
    """Everything needed to talk to the API except the key (safe to log, pickle, persist)."""

    api_url: str
    concurrency: int = 16
    rate_limit: int = 500
    rate_window: float = 60.0
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class HttpEngine:
    """An event loop in a daemon thread that owns one `HaiperClient`."""

    def __init__(self, config: ApiConfig, api_key: SecretStr) -> None:
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="haiper-http", daemon=True
        )
        self._thread.start()
        self._closed = False
        self._lock = threading.Lock()
        self.client = HaiperClient(
            config.api_url,
            api_key,
            concurrency=config.concurrency,
            limiter=RateLimiter(config.rate_limit, config.rate_window),
            timeouts=config.timeouts,
        )

    def run(self, work: Callable[[HaiperClient], Awaitable[T]]) -> T:
        """Run ``work(client)`` on the engine's loop and wait for its result."""

        async def call() -> T:
            return await work(self.client)

        with self._lock:
            if self._closed:
                raise EngineClosed("the run's HTTP engine is closed (the run is ending)")
            future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        return future.result()

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


_engines: dict[tuple[ApiConfig, str], HttpEngine] = {}
_engines_lock = threading.Lock()


def engine_for(config: ApiConfig, api_key: SecretStr) -> HttpEngine:
    """The process's engine for this config and key, started on first use."""
    key = (config, api_key.get_secret_value())
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = HttpEngine(config, api_key)
        return engine


def close_engines() -> None:
    """Close every engine of this process (end of a run)."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.close()


@contextmanager
def steady_gc() -> Iterator[None]:
    """Keep the garbage collector's full passes from stalling the HTTP loop during a run.

    A full collection holds the GIL while it walks every object: in a Prefect process that took
    up to 0.45 s, five times per 10,000-ID run, with all requests in flight waiting. Objects
    alive when the run starts (imports, Prefect's state) are frozen out of those walks, and
    collections of the older generations are made rarer; both are undone afterwards.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
