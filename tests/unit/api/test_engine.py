"""The run's HTTP engine: owned by the run, closing never strands a waiting task."""

from __future__ import annotations

import asyncio
import concurrent.futures
import pickle
import threading

import pytest
from pydantic import SecretStr

from haiper_sync.api.client import HaiperClient
from haiper_sync.api.engine import (
    ApiConfig,
    EngineClosed,
    HttpEngine,
    WorkerEngine,
    close_worker_engine,
    open_worker_engine,
)
from haiper_sync.settings import Settings

CONFIG = ApiConfig(api_url="http://127.0.0.1:9")


def test_closing_cancels_work_in_flight_and_refuses_new_work() -> None:
    started = threading.Event()

    async def forever(client: HaiperClient) -> None:
        started.set()
        await asyncio.Event().wait()

    with (
        HttpEngine(CONFIG, SecretStr("k")) as engine,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        waiting = pool.submit(engine.run, forever)
        assert started.wait(5)
        engine.close()
        with pytest.raises(concurrent.futures.CancelledError):
            waiting.result(timeout=5)
    with pytest.raises(EngineClosed):
        engine.run(forever)


def test_two_runs_have_two_engines_and_closing_one_leaves_the_other() -> None:
    async def url(client: HaiperClient) -> str:
        return client.api_url

    with HttpEngine(CONFIG, SecretStr("k")) as first:
        with HttpEngine(CONFIG, SecretStr("k")) as second:
            assert first.client is not second.client
        assert first.run(url) == "http://127.0.0.1:9"
        with pytest.raises(EngineClosed):
            second.run(url)


def test_pickled_engine_is_only_a_token_resolved_in_the_worker() -> None:
    async def url(client: HaiperClient) -> str:
        return client.api_url

    with HttpEngine(CONFIG, SecretStr("SECRET-KEY-x")) as engine:
        data = pickle.dumps(engine)
        assert b"SECRET-KEY-x" not in data
        remote = pickle.loads(data)
        assert isinstance(remote, WorkerEngine) and remote.config == CONFIG
        with pytest.raises(EngineClosed):
            remote.run(url)
        open_worker_engine(engine.token, CONFIG, SecretStr("k"))
        try:
            assert remote.run(url) == "http://127.0.0.1:9"
        finally:
            close_worker_engine(engine.token)
        with pytest.raises(EngineClosed):
            remote.run(url)


def test_config_from_settings_carries_the_network_and_the_breaker() -> None:
    settings = Settings(
        proxy="http://proxy:3128",
        ca_bundle="/etc/ca.pem",
        http_backend="httpx",
        breaker_threshold=4,
        breaker_seconds=2.5,
        max_attempts=3,
        connect_timeout=1.5,
    )
    config = ApiConfig.from_settings(settings, api_url="u", concurrency=8, rate_limit=60)
    assert (config.api_url, config.concurrency, config.rate_limit) == ("u", 8, 60)
    assert config.network.proxy == "http://proxy:3128" and config.network.backend == "httpx"
    assert config.network.ca_bundle == "/etc/ca.pem"
    assert (config.breaker_threshold, config.breaker_seconds) == (4, 2.5)
    assert config.retry.max_attempts == 3 and config.timeouts.connect == 1.5
    # Two Dask workers: each gets half, so the run as a whole stays within its limits.
    split = ApiConfig.from_settings(
        settings, api_url="u", concurrency=8, rate_limit=61, max_requests=5, processes=2
    )
    assert (split.concurrency, split.rate_limit, split.max_requests) == (4, 30, 2)
