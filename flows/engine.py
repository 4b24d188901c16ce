"""Where a run's requests are sent from: the API key, the task runner, the run's HTTP engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import SecretStr

from haiper_sync.api.engine import ApiConfig, HttpEngine, close_worker_engine, open_worker_engine
from haiper_sync.errors import ConfigError
from haiper_sync.settings import NO_API_KEY, SECRET_BLOCK, Settings, load_settings
from haiper_sync.sync.options import SyncOptions
from haiper_sync.sync.run import CHUNKS_IN_FLIGHT, frozen_heap


def resolve_api_key() -> SecretStr:
    """The API key: ``HAIPER_API_KEY`` if set, else the Prefect Secret block ``haiper-api-key``."""
    settings = load_settings()
    if settings.api_key is not None and settings.api_key.get_secret_value():
        return settings.api_key
    try:
        from prefect.blocks.system import Secret

        value = Secret.load(SECRET_BLOCK).get()  # type: ignore[union-attr]
    except (ValueError, RuntimeError):
        value = None
    if not value:
        raise ConfigError(NO_API_KEY)
    return SecretStr(str(value))


def build_task_runner(settings: Settings) -> Any:
    """The task runner the settings ask for (threads by default, or Dask).

    Prefect takes a flow's runner when the flow is decorated, so this runs when `flows.sync`
    is imported: by the CLI after its checks, and by a worker or ``serve`` process once per
    flow run (each run is a fresh process), so ``HAIPER_TASK_RUNNER`` is read per run.
    """
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


def _dask_runner() -> Any:
    context = FlowRunContext.get()
    runner = context.task_runner if context else None
    return runner if type(runner).__name__ == "DaskTaskRunner" else None


def fetching_processes() -> int:
    """How many processes send the run's requests: the Dask workers, else this one."""
    runner = _dask_runner()
    return max(1, len(runner.client.scheduler_info().get("workers", {}))) if runner else 1


@contextmanager
def run_engine(options: SyncOptions, api_key: SecretStr) -> Iterator[HttpEngine]:
    """The run's HTTP engine, open for the run in this process and on every Dask worker."""
    config = ApiConfig.from_settings(
        load_settings(),
        api_url=options.api_url,
        concurrency=options.concurrency,
        rate_limit=options.rate_limit,
        max_requests=options.max_requests,
        processes=fetching_processes(),
    )
    with frozen_heap(), HttpEngine(config, api_key) as engine:
        runner = _dask_runner()
        if runner is None:
            yield engine
            return
        runner.client.run(open_worker_engine, engine.token, config, api_key)
        try:
            yield engine
        finally:
            runner.client.run(close_worker_engine, engine.token)
