"""Where tasks run, and the run's HTTP engine in every process that sends requests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import SecretStr

from haiper_sync.engine import ApiConfig, HttpEngine, close_worker_engine, open_worker_engine
from haiper_sync.settings import Settings

# This many chunks are fetched ahead of the writer.
CHUNKS_IN_FLIGHT = 3


def _dask_runner() -> Any:
    context = FlowRunContext.get()
    runner = context.task_runner if context else None
    return runner if type(runner).__name__ == "DaskTaskRunner" else None


def build_task_runner(settings: Settings) -> Any:
    """The task runner the settings ask for (threads by default, or Dask)."""
    if settings.task_runner == "dask":
        from prefect_dask.task_runners import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": settings.dask_workers,
                "threads_per_worker": CHUNKS_IN_FLIGHT,
                "processes": True,
                "dashboard_address": None,
            }
        )
    # Bounded: Prefect's default pool is effectively unbounded (300 tasks -> 215 threads).
    return ThreadPoolTaskRunner(max_workers=CHUNKS_IN_FLIGHT)


def fetching_processes() -> int:
    """How many processes send requests for this run (Dask workers, else 1).

    Each process has its own limiter and connection pool, so the run's rate limit and
    concurrency are split evenly among them.
    """
    runner = _dask_runner()
    if runner is None:
        return 1
    workers = runner.client.scheduler_info().get("workers", {})
    return max(1, len(workers))


@contextmanager
def run_engine(config: ApiConfig, api_key: SecretStr) -> Iterator[HttpEngine]:
    """The run's HTTP engine, open for the run in this process and on every Dask worker."""
    with HttpEngine(config, api_key) as engine:
        runner = _dask_runner()
        if runner is None:
            yield engine
            return
        runner.client.run(open_worker_engine, engine.token, config, api_key)
        try:
            yield engine
        finally:
            runner.client.run(close_worker_engine, engine.token)
