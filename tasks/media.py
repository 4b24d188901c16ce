"""The task that archives a DuckDB file's media (in the flow's process, on the run's engine)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from haiper_sync.api.engine import HttpEngine
from haiper_sync.media import ArchiveProgress, ArchiveSummary, archive_media, detail_refresher
from haiper_sync.settings import load_settings
from haiper_sync.sync.options import SyncOptions
from haiper_sync.sync.progress import media_line

# A progress line at most this often, in seconds.
EVERY = 30.0
# How often the UI's progress artifact is brought up to date while files flow, in seconds.
TICK = 1.0
PROGRESS_KEY = "haiper-sync-media-progress"


def _description(p: ArchiveProgress) -> str:
    failed = f", {p.files_failed:,} failed" if p.files_failed else ""
    return (
        f"media files: {p.files_done:,} of {p.files_total:,} archived{failed}, "
        f"{p.bytes_received / 1e6:,.1f} MB received"
    )


class MediaProgress:
    """The archive's progress in the UI (a progress artifact: files handled of the planned,
    bytes in its description) and in the log (a line every ``every`` seconds).

    The archive reports from the engine's event loop; that callback only keeps the latest
    numbers. `show` runs in the task's own thread, where Prefect's run context is.
    """

    def __init__(
        self,
        logger: Any,
        *,
        every: float = EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger, self._every, self._clock = logger, every, clock
        self._started = self._last_line = clock()
        self.latest = ArchiveProgress(0, 0, 0, 0)
        self._shown: ArchiveProgress | None = None
        self._artifact: UUID = create_progress_artifact(  # type: ignore[assignment]
            0.0, key=PROGRESS_KEY, description="media files archived so far"
        )

    def __call__(self, progress: ArchiveProgress) -> None:
        """The archive's callback (any thread): remember the numbers."""
        self.latest = progress

    def show(self, *, final: bool = False) -> None:
        """Bring the artifact up to date if the numbers moved; the log line when it is due."""
        p = self.latest
        if p != self._shown or final:
            self._shown = p
            handled = p.files_done + p.files_failed
            percent = 100.0 * handled / p.files_total if p.files_total else 100.0
            update_progress_artifact(
                self._artifact, 100.0 if final else percent, description=_description(p)
            )
        now = self._clock()
        if now - self._last_line >= self._every and not final:
            self._last_line = now
            self._logger.info(
                media_line(
                    p.files_done, p.files_total, p.files_failed, p.bytes_received,
                    now - self._started,
                )
            )  # fmt: skip


def _wait(future: Future[ArchiveSummary], progress: MediaProgress) -> ArchiveSummary:
    while not future.done():
        try:
            return future.result(timeout=TICK)
        except TimeoutError:
            progress.show()
    return future.result()


@task(task_run_name="archive-media", cache_policy=NO_CACHE)
def archive_creations_media(
    options: SyncOptions, engine: HttpEngine, run_id: str | None
) -> ArchiveSummary:
    """Archive the media of every stored creation not archived yet into ``destination``.

    Expired or refused links cost one detail request each, through the run's engine (its rate
    limit, budget and breaker).
    """
    logger = get_run_logger()
    db_path, destination = options.db_path, options.archive_media
    media_concurrency, lock_timeout = options.media_concurrency, options.lock_timeout
    settings = load_settings().model_copy(
        update={"media_concurrency": media_concurrency, "lock_timeout": lock_timeout}
    )
    progress = MediaProgress(logger)

    def work(client: Any) -> Any:
        return archive_media(
            db_path,
            destination,
            settings=settings,
            run_id=run_id,
            refresher=detail_refresher(
                client, db_path, run_id=run_id or "archive", lock_timeout=lock_timeout
            ),
            progress=progress,
        )

    # The engine's loop does the work; this thread keeps the UI's progress moving meanwhile.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive-media")
    try:
        summary = _wait(pool.submit(engine.run, work), progress)
    finally:
        # An interrupted wait leaves the engine's close to cancel the work; never wait here.
        pool.shutdown(wait=False)
    progress.show(final=True)
    return summary
