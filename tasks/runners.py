"""Choosing where tasks run, and how the request budget is shared among processes."""

from __future__ import annotations

from typing import Any

from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner

from haiper_sync.settings import Settings

# Each chunk has a status and a detail task; this many chunks are fetched ahead of the writer.
CHUNKS_IN_FLIGHT = 3


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
    context = FlowRunContext.get()
    runner = context.task_runner if context else None
    if runner is None or type(runner).__name__ != "DaskTaskRunner":
        return 1
    workers = runner.client.scheduler_info().get("workers", {})  # type: ignore[attr-defined]
    return max(1, len(workers))
