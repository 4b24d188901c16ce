"""The task that archives a DuckDB file's media (in the flow's process, on the run's engine)."""

from __future__ import annotations

import time
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from haiper_sync.api.engine import HttpEngine
from haiper_sync.media import ArchiveProgress, ArchiveSummary, archive_media, detail_refresher
from haiper_sync.settings import load_settings
from haiper_sync.sync.options import SyncOptions
from haiper_sync.sync.progress import media_line

# A progress line at most this often, in seconds.
EVERY = 30.0


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
    started = time.monotonic()
    last = [started]

    def on_progress(progress: ArchiveProgress) -> None:
        now = time.monotonic()
        if now - last[0] >= EVERY:
            last[0] = now
            logger.info(
                media_line(
                    progress.files_done,
                    progress.files_total,
                    progress.files_failed,
                    progress.bytes_received,
                    now - started,
                )
            )

    def work(client: Any) -> Any:
        return archive_media(
            db_path,
            destination,
            settings=settings,
            run_id=run_id,
            refresher=detail_refresher(
                client, db_path, run_id=run_id or "archive", lock_timeout=lock_timeout
            ),
            progress=on_progress,
        )

    summary: ArchiveSummary = engine.run(work)
    return summary
