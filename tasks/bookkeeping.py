"""The tasks that open and close a run in the DuckDB file (in the flow's process)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from haiper_sync.errors import DatabaseLocked, StorageError
from haiper_sync.store import connection, runs
from haiper_sync.store.set_aside import set_aside_run_end, write_set_aside
from haiper_sync.summary import RunSummary
from haiper_sync.sync.options import SyncOptions
from haiper_sync.sync.plan import Plan, plan_run


@task(cache_policy=NO_CACHE)
def prepare_sync(options: SyncOptions, summary: RunSummary, *, todo_path: Path) -> Plan:
    """Open the run's row, load the manifest and write the to-do list (under the sync lock)."""
    logger = get_run_logger()
    with connection.open_database(
        options.db_path,
        timeout=options.lock_timeout,
        on_wait=logger.warning,
        init_existing=options.init_existing,
    ) as con:
        leftovers = write_set_aside(con, options.db_path)
        if leftovers:
            logger.info("Wrote %d chunk(s) an earlier run had to set aside", leftovers)
        abandoned = runs.abandon_stale_runs(con)
        if abandoned:
            logger.warning("Marked %d earlier run(s) that never finished as abandoned", abandoned)
        runs.start_run(con, summary.run_id, **summary.start())
        plan = plan_run(
            con,
            summary.manifest,
            run_id=summary.run_id,
            refresh=summary.refresh,
            todo_path=todo_path,
            chunk_size=options.requested_chunk_size,
            manifest_format=options.manifest_format,
            recheck_all=options.recheck_all,
            refresh_older_than=options.refresh_older_than,
        )
        runs.add_run_counts(con, summary.run_id, plan.counts())
    return plan


@task(cache_policy=NO_CACHE)
def finish_sync(
    db_path: str,
    summary: RunSummary,
    *,
    state: str,
    message: str | None,
    lock_timeout: float,
    holds_sync_lock: bool = True,
) -> tuple[RunSummary, list[dict[str, Any]]]:
    """End the run's row (opening it first if the run failed before it had one); return it,
    with a sample of its errors.

    If the file is held, the run's end is set aside like a chunk and ``summary`` (the flow's own
    count of what it wrote or set aside) stands in for the row. Without the sync lock (another
    sync holds it) set-aside chunks are left to their own run.
    """
    logger = get_run_logger()
    try:
        with connection.open_database(
            db_path, timeout=lock_timeout, on_wait=logger.warning, migrate_schema=False
        ) as con:
            if holds_sync_lock:
                write_set_aside(con, db_path)
            runs.ensure_run(con, summary.run_id, **summary.start())
            runs.finish_run(con, summary.run_id, state=state, message=message)
            stored = runs.fetch_run(con, summary.run_id)
            errors = runs.error_sample(con, summary.run_id)
        stored.chunks_set_aside, stored.media = summary.chunks_set_aside, summary.media
        return stored, errors
    except (DatabaseLocked, StorageError) as held:
        # A held file, or a full disk: the end waits beside the file (or in the temp folder)
        # for the next run that gets it.
        folder = set_aside_run_end(db_path, summary, state, message)
        logger.warning("%s; the run's end is set aside in %s", str(held).rstrip("."), folder)
        summary.state, summary.message = state, message
        summary.finished_at, summary.end_set_aside = datetime.now(UTC), True
        return summary, []
