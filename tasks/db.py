"""The tasks that open and close a run in the DuckDB file (in the flow's process)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from haiper_sync.errors import DatabaseLocked
from haiper_sync.settings import ManifestFormat
from haiper_sync.store import connection, runs
from haiper_sync.store.spill import ingest_spills, spill_run_end
from haiper_sync.summary import RunSummary
from haiper_sync.sync.plan import Plan, plan_run


@task(cache_policy=NO_CACHE)
def prepare_sync(
    db_path: str,
    run: RunSummary,
    *,
    todo_path: Path,
    chunk_size: int,
    lock_timeout: float,
    init_existing: bool = False,
    manifest_format: ManifestFormat = "auto",
    recheck_all: bool = False,
    refresh_older_than: timedelta | None = None,
) -> Plan:
    """Open the run's row, load the manifest and write the to-do list (under the sync lock)."""
    logger = get_run_logger()
    with connection.open_database(
        db_path, timeout=lock_timeout, on_wait=logger.warning, init_existing=init_existing
    ) as con:
        leftovers = ingest_spills(con, db_path)
        if leftovers:
            logger.info("Wrote %d chunk(s) an earlier run had to set aside", leftovers)
        abandoned = runs.abandon_stale_runs(con)
        if abandoned:
            logger.warning("Marked %d earlier run(s) that never finished as abandoned", abandoned)
        runs.start_run(
            con,
            run.run_id,
            manifest=run.manifest,
            refresh=run.refresh,
            flow_run_id=run.flow_run_id,
            started_at=run.started_at,
        )
        plan = plan_run(
            con,
            run.manifest,
            run_id=run.run_id,
            refresh=run.refresh,
            todo_path=todo_path,
            chunk_size=chunk_size,
            manifest_format=manifest_format,
            recheck_all=recheck_all,
            refresh_older_than=refresh_older_than,
        )
        runs.add_run_counts(con, run.run_id, plan.counts())
    return plan


@task(cache_policy=NO_CACHE)
def finish_sync(
    db_path: str, tally: RunSummary, *, state: str, message: str | None, lock_timeout: float
) -> tuple[RunSummary, list[dict[str, Any]]]:
    """Close the run's row; return it, with a sample of its errors.

    If the file is held, the run's end is set aside like a chunk and ``tally`` (the flow's own
    count of what it wrote or set aside) stands in for the row.
    """
    logger = get_run_logger()
    try:
        with connection.open_database(
            db_path, timeout=lock_timeout, on_wait=logger.warning, migrate_schema=False
        ) as con:
            ingest_spills(con, db_path)
            runs.finish_run(con, tally.run_id, state=state, message=message)
            summary = runs.fetch_run(con, tally.run_id)
            errors = runs.error_sample(con, tally.run_id)
        summary.chunks_set_aside = tally.chunks_set_aside
        return summary, errors
    except DatabaseLocked as locked:
        folder = spill_run_end(db_path, tally.run_id, state, message)
        logger.warning("%s The run's end is set aside in %s.", locked, folder)
        tally.state, tally.message = state, message
        tally.finished_at, tally.end_set_aside = datetime.now(UTC), True
        return tally, []
