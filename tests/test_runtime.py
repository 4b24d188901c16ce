"""The per-process HTTP engine: shared per config, and closing never strands a waiting task."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading

import pytest
from pydantic import SecretStr

from haiper_sync.client import HaiperClient
from haiper_sync.runtime import ApiConfig, EngineClosed, close_engines, engine_for, steady_gc


def test_one_engine_per_config_and_key() -> None:
    config = ApiConfig(api_url="http://127.0.0.1:9")
    a = engine_for(config, SecretStr("k1"))
    assert engine_for(config, SecretStr("k1")) is a
    assert engine_for(config, SecretStr("k2")) is not a
    close_engines()
    assert engine_for(config, SecretStr("k1")) is not a
    close_engines()


def test_closing_cancels_work_in_flight_and_refuses_new_work() -> None:
    engine = engine_for(ApiConfig(api_url="http://127.0.0.1:9"), SecretStr("k"))
    started = threading.Event()

    async def forever(client: HaiperClient) -> None:
        started.set()
        await asyncio.Event().wait()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(engine.run, forever)
        assert started.wait(5)
        close_engines()
        with pytest.raises(concurrent.futures.CancelledError):
            waiting.result(timeout=5)
    with pytest.raises(EngineClosed):
        engine.run(forever)


def test_steady_gc_freezes_for_the_run_and_restores_the_collector() -> None:
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    kept = [[] for _ in range(100)]  # alive before the run: frozen out of collections
    with steady_gc():
        assert gc.get_freeze_count() >= frozen + len(kept)
        assert gc.get_threshold()[0] > threshold[0]
    assert gc.get_threshold() == threshold
    assert gc.get_freeze_count() == 0
