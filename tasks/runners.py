"""Choosing where tasks run, and how the request budget is shared among processes."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import opaque, quote

from haiper_sync.settings import Settings

T = TypeVar("T")

# Each chunk has a status and a detail task; this many chunks are fetched ahead of the writer.
CHUNKS_IN_FLIGHT = 3


def as_is(value: T) -> T:
    """Hand ``value`` to a task without Prefect walking through it looking for futures.

    For a batch of hundreds of outcomes that walk costs more CPU than the requests did.
    prefect-dask does not unwrap the annotation on its workers, so there it is left out.
    """
    return value if _on_dask() else cast(T, quote(value))


def resolved(future: PrefectFuture[T]) -> T:
    """Hand a future's result to a task: waited for, but not walked through."""
    return cast(T, future) if _on_dask() else cast(T, opaque(future))


def _dask_runner() -> Any:
    context = FlowRunContext.get()
    runner = context.task_runner if context else None
    return runner if type(runner).__name__ == "DaskTaskRunner" else None


def _on_dask() -> bool:
    return _dask_runner() is not None


def build_task_runner(settings: Settings) -> Any:
    """The task runner the settings ask for (threads by default, or Dask)."""
    if settings.task_runner == "dask":
        from prefect_dask.task_runners import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": settings.dask_workers,
                "threads_per_worker": 2 * CHUNKS_IN_FLIGHT,
                "processes": True,
                "dashboard_address": None,
            }
        )
    # Bounded: Prefect's default pool is effectively unbounded (300 tasks -> 215 threads).
    return ThreadPoolTaskRunner(max_workers=2 * CHUNKS_IN_FLIGHT)


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
