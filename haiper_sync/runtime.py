"""A process-wide HTTP engine: one event loop thread, one client pool, one limiter per API config.

Prefect runs tasks in worker threads (or Dask processes). Routing every task's requests through
one loop per process makes ``concurrency`` and ``rate_limit`` hold for the whole process, however
many chunks are in flight, and keeps keep-alive connections warm between chunks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import SecretStr

from haiper_sync.client import HaiperClient, Timeouts
from haiper_sync.ratelimit import RateLimiter
from haiper_sync.retry import RetryPolicy

T = TypeVar("T")


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

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result()

    def close(self) -> None:
        """Close the connections and stop the loop thread."""
        if not self._loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(self.client.aclose(), self._loop).result()
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
