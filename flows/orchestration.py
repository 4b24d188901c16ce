"""What the flow needs beside its tasks: the key, the task runner, the run's HTTP engine, the
chunk pipeline, the writer, and the run's record in DuckDB and in the Prefect UI."""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import SecretStr

from haiper_sync.api.engine import ApiConfig, HttpEngine, close_worker_engine, open_worker_engine
from haiper_sync.errors import ConfigError, DatabaseLocked, HaiperSyncError, TooManyErrors
from haiper_sync.rows import ChunkRows
from haiper_sync.settings import SECRET_BLOCK, Settings, load_settings
from haiper_sync.store.connection import open_database
from haiper_sync.store.spill import ingest_spills, spill_chunk
from haiper_sync.store.writes import write_chunk
from haiper_sync.summary import RunSummary
from haiper_sync.sync.progress import Progress, progress_line, publish
from tasks import finish_sync

T = TypeVar("T")

SUMMARY_KEY = "haiper-sync-summary"
PROGRESS_KEY = "haiper-sync-progress"
# This many chunks are fetched ahead of the writer.
CHUNKS_IN_FLIGHT = 3


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
        raise ConfigError(
            f"no API key: export HAIPER_API_KEY or create the Prefect Secret block {SECRET_BLOCK!r}"
        )
    return SecretStr(str(value))


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
    """How many processes send the run's requests: the Dask workers, else this one."""
    runner = _dask_runner()
    return max(1, len(runner.client.scheduler_info().get("workers", {}))) if runner else 1


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


def ahead(futures: Iterable[T], depth: int = CHUNKS_IN_FLIGHT) -> Iterator[T]:
    """Yield ``futures`` in order while keeping ``depth`` of them submitted ahead."""
    waiting: deque[T] = deque()
    for future in futures:
        waiting.append(future)
        if len(waiting) >= depth:
            yield waiting.popleft()
    while waiting:
        yield waiting.popleft()


class RunProgress:
    """Keeps the UI's progress artifact, in-process listeners and the run's log up to date.

    The log gets a progress line for a written chunk when the last one is at least
    ``every`` seconds old: one a chunk at the API's quota (a chunk lasts about 30 s), fewer
    when chunks are fast.
    """

    def __init__(
        self,
        tally: RunSummary,
        total: int,
        logger: Any,
        *,
        every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tally, self.total, self.done = tally, total, 0
        self._logger, self._every, self._clock = logger, every, clock
        self._started = clock()
        self._last_line = float("-inf")
        self._artifact: UUID = create_progress_artifact(  # type: ignore[assignment]
            0.0 if total else 100.0, key=PROGRESS_KEY, description="IDs handled so far"
        )
        publish(Progress(tally.run_id, 0, total))

    def advance(self, ids: int) -> None:
        """Count ``ids`` more IDs as handled."""
        self.done += ids
        percent = 100.0 * self.done / self.total if self.total else 100.0
        update_progress_artifact(self._artifact, percent)
        publish(Progress(self.tally.run_id, self.done, self.total))
        now = self._clock()
        if now - self._last_line >= self._every:
            self._last_line = now
            self._logger.info(
                progress_line(
                    self.done,
                    self.total,
                    self.tally.requests,
                    self.tally.ids_errored,
                    now - self._started,
                )
            )


class _QuietSuccesses(logging.Filter):
    """Drops Prefect's "Finished in state Completed()" line of each task run (failures stay)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Finished in state Completed")


def quiet_task_successes() -> None:
    """One line a chunk is the progress line; Prefect's per-task success lines only bury it."""
    task_runs = logging.getLogger("prefect.task_runs")
    if not any(isinstance(f, _QuietSuccesses) for f in task_runs.filters):
        task_runs.addFilter(_QuietSuccesses())


class ChunkWriter:
    """Writes a run's chunks in order as their futures finish, and keeps the run's tally.

    It runs in the flow's process: one writer per database. A chunk that finds the file held
    by someone else past the lock timeout is set aside in ``<db>.pending/``; once that
    happened, the next writes wait only briefly (and set their chunk aside too) instead of
    stalling the whole run for the full timeout each.
    """

    BRIEF_WAIT = 1.0

    def __init__(
        self, db_path: str, tally: RunSummary, lock_timeout: float, logger: Any = None
    ) -> None:
        self.db_path, self.tally, self.lock_timeout = db_path, tally, lock_timeout
        self._wait = lock_timeout
        self._logger = logger or logging.getLogger(__name__)

    def write(self, chunk_no: int, future: PrefectFuture[ChunkRows]) -> int:
        """Wait for a chunk's rows and commit them; return how many IDs the chunk held."""
        rows = future.result()
        run_id = self.tally.run_id
        try:
            with open_database(
                self.db_path,
                timeout=self._wait,
                on_wait=self._logger.warning,
                migrate_schema=False,
            ) as con:
                ingest_spills(con, self.db_path)
                counts = write_chunk(con, run_id, rows)
            self._wait = self.lock_timeout
        except DatabaseLocked as locked:
            folder = spill_chunk(self.db_path, run_id, chunk_no, rows)
            self._logger.warning(
                "%s Chunk %d set aside in %s until the file is free.", locked, chunk_no, folder
            )
            counts = rows.counts
            self.tally.chunks_set_aside += 1
            self._wait = self.BRIEF_WAIT
        self.tally.add(counts)
        return len(rows.statuses)


class RunRecord:
    """The run's summary once `recorded` has ended the run (the tally until then)."""

    def __init__(self, tally: RunSummary) -> None:
        self.summary = tally
        self.note: str | None = None  # the message of a run that completed with something to say


@contextmanager
def recorded(
    db_path: str, tally: RunSummary, lock_timeout: float, logger: Any
) -> Iterator[RunRecord]:
    """Around the run's work: end its ``sync_runs`` row and publish its summary, however it ends.

    Leaving normally records ``completed``; leaving with an exception records ``failed`` with
    the exception in one line, and lets the exception through.
    """
    record = RunRecord(tally)
    try:
        yield record
    except BaseException as error:
        try:
            record.summary = _finish(db_path, tally, "failed", _one_line(error), lock_timeout)
        except Exception as finish_error:
            # Never mask the error that failed the run with one about recording it.
            logger.error("Could not record the end of run %s: %s", tally.run_id, finish_error)
        raise
    record.summary = _finish(db_path, tally, "completed", record.note, lock_timeout)


def _finish(
    db_path: str, tally: RunSummary, state: str, message: str | None, lock_timeout: float
) -> RunSummary:
    summary, errors = finish_sync(
        db_path, tally, state=state, message=message, lock_timeout=lock_timeout
    )
    create_markdown_artifact(
        summary.markdown(errors),
        key=SUMMARY_KEY,
        description=f"{summary.manifest} → sync summary",
    )
    emit_run_event(summary, db_path)
    return summary


EVENT_PREFIX = "haiper-sync.run"


def emit_run_event(summary: RunSummary, db_path: str) -> None:
    """``haiper-sync.run.completed`` / ``.failed``: the run's counts, the DuckDB file as the
    resource, for automations (docs/deployments.md)."""
    path = Path(db_path).absolute()
    emit_event(
        event=f"{EVENT_PREFIX}.{summary.state}",
        resource={
            "prefect.resource.id": f"haiper-sync.database.{path}",
            "prefect.resource.name": path.name,
        },
        payload={
            "run_id": summary.run_id,
            "manifest": summary.manifest,
            "message": summary.message,
            **summary.counts(),
        },
    )


def check_error_ratio(tally: RunSummary, max_error_ratio: float) -> None:
    """Raise `TooManyErrors` when more than ``max_error_ratio`` of the manifest's IDs errored.

    Of the manifest, not of the IDs this run asked about: a nightly rerun asks mostly about
    the unfinished and the unknown, and a few 404s among those are not a bad night.
    """
    total = tally.ids_in_manifest
    if total and tally.ids_errored / total > max_error_ratio:
        raise TooManyErrors(
            f"{tally.ids_errored} of {total} IDs errored ({tally.ids_errored / total:.0%}), "
            f"more than max_error_ratio {max_error_ratio:.0%} allows; see sync_errors"
        )


def new_run(manifest: str, refresh: bool, flow_run_id: str | None) -> RunSummary:
    """The record of a run about to start."""
    return RunSummary(
        run_id=uuid.uuid4().hex,
        manifest=manifest,
        refresh=refresh,
        started_at=datetime.now(UTC),
        flow_run_id=flow_run_id,
    )


def _one_line(error: BaseException) -> str:
    # Our own errors are written to be read as they are; anything else needs its type.
    if isinstance(error, HaiperSyncError):
        return str(error)
    return f"{type(error).__name__}: {error}"
