"""What a run tells people: its log lines, its progress and summary artifacts, its events."""

from __future__ import annotations

import logging
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_run_logger, runtime
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.events import emit_event

from haiper_sync.errors import HaiperSyncError
from haiper_sync.rows import ChunkRows
from haiper_sync.store.lock import sync_lock
from haiper_sync.summary import RunSummary
from haiper_sync.sync.options import SyncOptions
from haiper_sync.sync.plan import Plan, chunk_size_for
from haiper_sync.sync.progress import Progress, progress_line, publish
from haiper_sync.sync.run import ChunkWriter, check_error_ratio, new_run
from tasks import finish_sync

SUMMARY_KEY = "haiper-sync-summary"
PROGRESS_KEY = "haiper-sync-progress"
EVENT_PREFIX = "haiper-sync.run"


class RunProgress:
    """Keeps the UI's progress artifact, in-process listeners and the run's log up to date.

    The log gets a progress line for a written chunk when the last one is at least
    ``every`` seconds old: one a chunk at the API's quota (a chunk lasts about 30 s), fewer
    when chunks are fast.
    """

    def __init__(
        self,
        summary: RunSummary,
        total: int,
        logger: Any,
        *,
        every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.summary, self.total, self.done = summary, total, 0
        self._logger, self._every, self._clock = logger, every, clock
        self._started = clock()
        self._last_line = float("-inf")
        self._artifact: UUID = create_progress_artifact(  # type: ignore[assignment]
            0.0 if total else 100.0, key=PROGRESS_KEY, description="IDs handled so far"
        )
        publish(Progress(summary.run_id, 0, total))

    def advance(self, ids: int) -> None:
        """Count ``ids`` more IDs as handled."""
        self.done += ids
        percent = 100.0 * self.done / self.total if self.total else 100.0
        update_progress_artifact(self._artifact, percent)
        publish(Progress(self.summary.run_id, self.done, self.total))
        now = self._clock()
        if now - self._last_line >= self._every:
            self._last_line = now
            self._logger.info(
                progress_line(
                    self.done,
                    self.total,
                    self.summary.requests,
                    self.summary.ids_errored,
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


class SyncRun:
    """One run as the flow sees it: its summary, where its to-do list lives, its writer."""

    def __init__(self, options: SyncOptions, summary: RunSummary, work: Path, logger: Any) -> None:
        self.options, self.summary, self.todo_path = options, summary, work / "todo.parquet"
        self.chunk_size = options.requested_chunk_size
        self.note: str | None = None  # the message of a run that completed with something to say
        self._logger = logger
        self._writer = ChunkWriter(options.db_path, summary, options.lock_timeout, logger.warning)
        self._progress: RunProgress | None = None

    @property
    def run_id(self) -> str:
        """The run's ID in ``sync_runs``."""
        return self.summary.run_id

    def planned(self, plan: Plan) -> Plan:
        """Take the plan's counts, say what the run will do; a manifest without IDs fails."""
        self.chunk_size = chunk_size_for(plan.todo, self.chunk_size, self.options.max_chunks)
        self._logger.info(
            "Manifest: %d IDs (%d rejected, %d already finished, %d not due yet); "
            "%d to sync in chunks of %d",
            plan.ids_in_manifest,
            plan.ids_rejected,
            plan.ids_skipped,
            plan.ids_not_due,
            plan.todo,
            self.chunk_size,
        )
        self.summary.add(plan.counts())
        plan.check_not_empty(self.options.manifest)
        self._progress = RunProgress(self.summary, plan.todo, self._logger)
        return plan

    def write(self, chunk_no: int, rows: ChunkRows) -> None:
        """Commit a chunk's rows (or set them aside) and move the progress on."""
        assert self._progress is not None, "planned() comes first"
        self._progress.advance(self._writer.write(chunk_no, rows))

    def finish(self) -> None:
        """The run's verdict: too many errors fail it; a spent budget is its note."""
        check_error_ratio(self.summary, self.options.max_error_ratio)
        todo = self._progress.total if self._progress else 0
        done = self._progress.done if self._progress else 0
        if done < todo:
            self.note = (
                f"request budget of {self.options.max_requests} spent: {todo - done} IDs left "
                "for the next run"
            )


@contextmanager
def sync_run(options: SyncOptions) -> Iterator[SyncRun]:
    """Around a run's work: the sync lock, a scratch folder, and the run's record.

    However the run ends, its ``sync_runs`` row is ended and its summary published; leaving
    with an exception records ``failed`` with the exception in one line and lets it through.
    """
    logger = get_run_logger()
    quiet_task_successes()
    summary = new_run(options.manifest, options.refresh, str(runtime.flow_run.id or "") or None)
    with (
        sync_lock(options.db_path, timeout=options.lock_timeout, on_wait=logger.warning),
        tempfile.TemporaryDirectory(prefix="haiper-sync-") as work,
    ):
        run = SyncRun(options, summary, Path(work), logger)
        try:
            yield run
        except BaseException as error:
            try:
                run.summary = _finish(options, run.summary, "failed", one_line(error))
            except Exception as finish_error:
                # Never mask the error that failed the run with one about recording it.
                logger.error("Could not record the end of run %s: %s", summary.run_id, finish_error)
            raise
        run.summary = _finish(options, run.summary, "completed", run.note)
    logger.info("Done: %s", run.summary.headline())


def _finish(
    options: SyncOptions, summary: RunSummary, state: str, message: str | None
) -> RunSummary:
    summary, errors = finish_sync(
        options.db_path, summary, state=state, message=message, lock_timeout=options.lock_timeout
    )
    create_markdown_artifact(
        summary.markdown(errors),
        key=SUMMARY_KEY,
        description=f"{summary.manifest} → sync summary",
    )
    emit_run_event(summary, options.db_path)
    return summary


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
            "db_path": str(path),
            "host": socket.gethostname(),
            **summary.counts(),
        },
    )


def one_line(error: BaseException) -> str:
    """An exception as the one line a run's record keeps."""
    # Our own errors are written to be read as they are; anything else needs its type.
    if isinstance(error, HaiperSyncError):
        return str(error)
    return f"{type(error).__name__}: {error}"
