"""What a run tells people: its log lines, its progress and summary artifacts, its events."""

from __future__ import annotations

import logging
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
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
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.events import emit_event
from prefect.exceptions import TerminationSignal
from prefect.futures import PrefectFuture
from prefect.states import Cancelled, Failed
from pydantic import SecretStr

from flows.engine import resolve_api_key, run_engine
from haiper_sync.api.engine import HttpEngine
from haiper_sync.errors import HaiperSyncError, Interrupted, StorageError
from haiper_sync.media import ArchiveSummary
from haiper_sync.rows import ChunkRows
from haiper_sync.store.lock import sync_lock
from haiper_sync.summary import RunSummary
from haiper_sync.sync.options import SyncOptions, given_by_flow, resolve
from haiper_sync.sync.plan import Plan, chunk_size_for
from haiper_sync.sync.progress import Progress, progress_line, publish
from haiper_sync.sync.run import ChunkWriter, check_error_ratio, new_run
from tasks import finish_sync

# How often the flow looks at the progress while it waits for a chunk, in seconds.
TICK = 1.0
SUMMARY_KEY = "haiper-sync-summary"
PROGRESS_KEY = "haiper-sync-progress"
EVENT_PREFIX = "haiper-sync.run"
# The resource every run's event is about: its DuckDB file (`haiper-sync.database.<path>`).
RESOURCE_PREFIX = "haiper-sync.database."


def run_event(state: str) -> str:
    """The event a run that ended in ``state`` emits: ``haiper-sync.run.failed``."""
    return f"{EVENT_PREFIX}.{state}"


class RunProgress:
    """Keeps the UI's progress artifact, in-process listeners and the run's log up to date.

    Progress comes from time, not from chunk writes: `tick` (called while the flow waits for a
    chunk) counts the IDs answered inside chunks still in flight, and a line goes to the log
    at least every ``every`` seconds, saying so when requests wait for the rate limit.
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
        self._last_line = clock()
        self._shown = -1.0
        self._shown_line = 0  # the IDs the last log line counted
        self._live: Callable[[], int] = lambda: 0
        self._live_requests: Callable[[], int] = lambda: 0
        self._waiting: Callable[[], str | None] = lambda: None
        self._artifact: UUID = create_progress_artifact(  # type: ignore[assignment]
            0.0 if total else 100.0, key=PROGRESS_KEY, description="IDs handled so far"
        )
        publish(Progress(summary.run_id, 0, total))

    def watch(
        self,
        live: Callable[[], int],
        waiting: Callable[[], str | None],
        requests: Callable[[], int] = lambda: 0,
    ) -> None:
        """Count ``live()`` IDs answered so far in flight and the ``requests()`` sent so far;
        ``waiting()`` says what holds them."""
        self._live, self._waiting, self._live_requests = live, waiting, requests

    def advance(self, ids: int) -> None:
        """Count ``ids`` more IDs as written."""
        self.done += ids
        self.tick(live=False)

    def tick(self, *, live: bool = True) -> None:
        """Show the progress if it moved (``live``: with the IDs answered in flight), and the
        log line when one is due."""
        seen = max(self.done, min(self.total, self._live())) if live else self.done
        # The summary counts a chunk's requests when it is written: in flight, the engine's.
        requests = max(self.summary.requests, self._live_requests() if live else 0)
        percent = 100.0 * seen / self.total if self.total else 100.0
        if percent != self._shown:
            self._shown = percent
            update_progress_artifact(self._artifact, percent)
            publish(Progress(self.summary.run_id, seen, self.total))
        now = self._clock()
        # A line every `every` seconds; also at the first chunk written and at the end.
        news = seen > self._shown_line and (seen == self.total or not self._shown_line)
        if now - self._last_line >= self._every or (news and self.done):
            self._last_line, self._shown_line = now, seen
            line = progress_line(
                seen, self.total, requests, self.summary.ids_errored,
                now - self._started,
            )  # fmt: skip
            waiting = self._waiting()
            self._logger.info(f"{line}; {waiting}" if waiting else line)


class _OurErrorsInOneLine(logging.Filter):
    """Drops the traceback from a record about one of our own errors (a 401, a held file): its
    message already says what is wrong; a traceback would make it read as a crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], HaiperSyncError):
            record.exc_info, record.exc_text = None, None
        return True


def our_errors_in_one_line() -> None:
    """Our foreseen errors are one line in every log of a run: the terminal's and the UI's."""
    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    # Prefect's console and API handlers sit on the root logger; records of other loggers
    # (the engine's) reach them too.
    for target in [*loggers, *logging.getLogger().handlers]:
        if not any(isinstance(f, _OurErrorsInOneLine) for f in target.filters):
            target.addFilter(_OurErrorsInOneLine())


class _QuietSuccesses(logging.Filter):
    """Drops Prefect's "Finished in state …" line of each task run: a success says nothing a
    progress line does not, and a failure's line repeats the "Task run failed" line before it
    (which stays, with its traceback when the error is not one of ours)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return not (
            text.startswith("Finished in state Completed")
            or text.startswith("Finished in state Failed('Task run encountered an exception")
        )


def quiet_task_successes() -> None:
    """One line a chunk is the progress line; Prefect's per-task success lines only bury it."""
    task_runs = logging.getLogger("prefect.task_runs")
    if not any(isinstance(f, _QuietSuccesses) for f in task_runs.filters):
        task_runs.addFilter(_QuietSuccesses())


class SyncRun:
    """One run as the flow sees it: its record, its to-do list, its writer, and how it ended."""

    def __init__(self, options: SyncOptions, summary: RunSummary, logger: Any) -> None:
        self.options, self.summary, self.todo_path = options, summary, Path()
        self.chunk_size = options.requested_chunk_size
        self.note: str | None = None  # the message of a run that completed with something to say
        # What the flow returns: the summary, or a Failed/Cancelled state with its one line.
        self.outcome: RunSummary | State[Any] = summary
        self.holds_lock = False
        self.api_key = SecretStr("")
        self._logger = logger
        self._writer = ChunkWriter(options.db_path, summary, options.lock_timeout, logger.warning)
        self._progress: RunProgress | None = None

    @property
    def run_id(self) -> str:
        """The run's ID in ``sync_runs``."""
        return self.summary.run_id

    @property
    def ids_written(self) -> int:
        """IDs whose chunk committed (or was set aside) so far."""
        return self._progress.done if self._progress else 0

    @property
    def ids_to_do(self) -> int:
        """IDs the run set out to sync."""
        return self._progress.total if self._progress else 0

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The sync lock and a scratch folder for the run's work.

        Entered after `sync_run` (in its ``with``), so that a lock that times out ends the run
        like any other failure: a generator context manager cannot skip its body, so `sync_run`
        could not take the lock itself and still fail the run in one line.
        """
        self.api_key = resolve_api_key()
        with sync_lock(
            self.options.db_path, timeout=self.options.lock_timeout, on_wait=self._logger.warning
        ):
            self.holds_lock = True
            with tempfile.TemporaryDirectory(prefix="haiper-sync-") as work:
                self.todo_path = Path(work) / "todo.parquet"
                yield

    def planned(self, plan: Plan) -> Plan:
        """Take the plan's counts, say what the run will do; a manifest without IDs fails."""
        assert self.holds_lock, "the run's work goes in `SyncRun.locked`"
        self.chunk_size = chunk_size_for(plan.todo, self.chunk_size, self.options.max_chunks)
        self._logger.info(
            "Manifest: %d IDs (%d rejected, %d already finished, %d not due yet); "
            "%d to sync in chunks of %d into %s",
            plan.ids_in_manifest,
            plan.ids_rejected,
            plan.ids_skipped,
            plan.ids_not_due,
            plan.todo,
            self.chunk_size,
            Path(self.options.db_path).absolute(),
        )
        self.summary.add(plan.counts())
        plan.check_not_empty(self.options.manifest)
        self._progress = RunProgress(
            self.summary, plan.todo, self._logger, every=self.options.progress_seconds
        )
        return plan

    @contextmanager
    def engine(self) -> Iterator[HttpEngine]:
        """The run's HTTP engine, its live counts feeding the progress."""
        with run_engine(self.options, self.api_key) as engine:
            if self._progress is not None:
                self._progress.watch(
                    lambda: engine.ids_done,
                    lambda: "waiting for the rate limit" if engine.rate_limited else None,
                    lambda: engine.budget.spent,
                )
            yield engine

    def write(self, chunk_no: int, future: PrefectFuture[ChunkRows]) -> None:
        """Wait for a chunk (the progress moving meanwhile), commit its rows or set them aside."""
        assert self._progress is not None, "planned() comes first"
        while future.state.is_pending() or future.state.is_running():
            future.wait(timeout=TICK)
            self._progress.tick()
        self._progress.advance(self._writer.write(chunk_no, future.result()))

    def archived(self, media: ArchiveSummary) -> None:
        """Take the media archive's counts into the run's summary."""
        self.summary.media = media
        self._logger.info("Media: %s", self.summary.media.line())

    def finish(self) -> None:
        """The run's verdict: too many errors fail it; a spent budget is its note."""
        check_error_ratio(self.summary, self.options.max_error_ratio)
        if self.ids_written < self.ids_to_do:
            self.note = (
                f"request budget of {self.options.max_requests} spent: "
                f"{self.ids_to_do - self.ids_written} IDs left for the next run"
            )

    def ending(self, error: BaseException) -> tuple[str, str]:
        """How ``error`` ended the run: its ``sync_runs`` state and its one line."""
        written = f"{self.ids_written:,} of {self.ids_to_do:,} IDs written; run again to resume"
        if isinstance(error, Interrupted):
            return "interrupted", f"interrupted by {error}: {written}"
        if isinstance(error, KeyboardInterrupt):
            return "interrupted", f"interrupted by SIGINT: {written}"
        if isinstance(error, TerminationSignal):
            if _cancelling():
                return "cancelled", f"cancelled from Prefect: {written}"
            return "interrupted", f"interrupted by SIGTERM: {written}"
        if isinstance(error, StorageError):
            return "failed", f"{error}; {self.ids_written:,} IDs written; fix that and run again"
        return "failed", one_line(error)


def _cancelling() -> bool:
    """True when Prefect is cancelling this flow run (a worker relays that as SIGTERM)."""
    try:
        # The runner says so on its control channel before it signals (Prefect 3.9's engine
        # reads the same flag); a server's state is the fallback.
        from prefect._internal.control_listener import get_intent

        if get_intent() == "cancel":
            return True
    except ImportError:
        pass
    flow_run_id = runtime.flow_run.id
    if not flow_run_id:
        return False
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run_id).state
    except Exception:
        return False
    return state is not None and (state.is_cancelling() or state.is_cancelled())


def run_options(parameters: Mapping[str, Any]) -> SyncOptions:
    """The run's options from the flow's parameters; a mistake (here, or in the ``HAIPER_*``
    of the worker running the flow) fails the run in one line."""
    our_errors_in_one_line()
    quiet_task_successes()
    return resolve(given_by_flow(parameters))


@contextmanager
def sync_run(options: SyncOptions) -> Iterator[SyncRun]:
    """Around a run's work: its record. The run's work goes in `SyncRun.locked` too, in the same
    ``with``: ``with sync_run(options) as run, run.locked():``.

    However the run ends, it ends with a ``sync_runs`` row (set aside if the file is held) and
    an event. A foreseen failure, a signal or a cancel becomes the run's outcome: a Failed or
    Cancelled state with its one line, no traceback. Anything else is re-raised.
    """
    logger = get_run_logger()
    quiet_task_successes()
    our_errors_in_one_line()
    summary = new_run(options.manifest, options.refresh, str(runtime.flow_run.id or "") or None)
    run = SyncRun(options, summary, logger)
    try:
        yield run
    except BaseException as error:
        state, message = run.ending(error)
        _end(run, state, message, logger)
        if state == "failed" and not isinstance(error, HaiperSyncError):
            raise  # unforeseen: keep its traceback
        run.outcome = (Failed if state == "failed" else Cancelled)(message=message)
        return
    _end(run, "completed", run.note, logger)
    logger.info("Done: %s; in %s", run.summary.headline(), Path(options.db_path).absolute())


def _end(run: SyncRun, state: str, message: str | None, logger: Any) -> None:
    """Record the run's end and announce it; a failure to record never masks the first one."""
    try:
        summary, errors = finish_sync(
            run.options.db_path,
            run.summary,
            state=state,
            message=message,
            lock_timeout=run.options.lock_timeout,
            holds_sync_lock=run.holds_lock,
        )
    except BaseException as finish_error:
        logger.error("Could not record the end of run %s: %s", run.run_id, one_line(finish_error))
        summary, errors = run.summary, []
        summary.state, summary.message = state, message
    run.summary = summary
    if isinstance(run.outcome, RunSummary):
        run.outcome = summary
    try:
        where = f"{socket.gethostname()}:{Path(run.options.db_path).absolute()}"
        create_markdown_artifact(
            summary.markdown(errors, database=where),
            key=SUMMARY_KEY,
            description=f"{summary.manifest} → {where}",
        )
    finally:
        emit_run_event(summary, run.options.db_path)


def emit_run_event(summary: RunSummary, db_path: str) -> None:
    """``haiper-sync.run.completed`` / ``.failed``: the run's counts, the DuckDB file as the
    resource, for automations (docs/deployments.md)."""
    path = Path(db_path).absolute()
    emit_event(
        event=run_event(summary.state),
        resource={
            "prefect.resource.id": f"{RESOURCE_PREFIX}{path}",
            "prefect.resource.name": path.name,
        },
        payload={
            "run_id": summary.run_id,
            "manifest": summary.manifest,
            "message": summary.message,
            "db_path": str(path),
            "host": socket.gethostname(),
            "flow_run_url": runtime.flow_run.ui_url,
            **summary.counts(),
        },
    )


def one_line(error: BaseException) -> str:
    """An exception as the one line a run's record keeps."""
    # Our own errors are written to be read as they are; anything else needs its type.
    if isinstance(error, HaiperSyncError):
        return str(error)
    return f"{type(error).__name__}: {error}"
