"""Tasks that write the DuckDB file. They run in the flow's process: one writer per database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from haiper_sync import store
from haiper_sync.manifest import Plan, plan_run
from haiper_sync.pipeline import DetailBatch, StatusBatch
from haiper_sync.sync import assemble_chunk, write_chunk


@task(cache_policy=NO_CACHE)
def prepare_sync(
    db_path: str,
    manifest: str,
    *,
    run_id: str,
    flow_run_id: str | None,
    refresh: bool,
    todo_path: Path,
    chunk_size: int,
    lock_timeout: float,
) -> Plan:
    """Open the run's row, load the manifest and write the to-do list (under the sync lock)."""
    logger = get_run_logger()
    with store.open_database(db_path, timeout=lock_timeout, on_wait=logger.warning) as con:
        abandoned = store.abandon_stale_runs(con)
        if abandoned:
            logger.warning("Marked %d earlier run(s) that never finished as abandoned", abandoned)
        store.start_run(con, run_id, manifest=manifest, refresh=refresh, flow_run_id=flow_run_id)
        plan = plan_run(
            con,
            manifest,
            run_id=run_id,
            refresh=refresh,
            todo_path=todo_path,
            chunk_size=chunk_size,
        )
        store.add_run_counts(
            con,
            run_id,
            {
                "ids_in_manifest": plan.ids_in_manifest,
                "ids_rejected": plan.ids_rejected,
                "ids_skipped": plan.ids_skipped,
            },
        )
    return plan


@task(task_run_name="write-chunk-{chunk_no}", cache_policy=NO_CACHE)
def write_results(
    db_path: str,
    run_id: str,
    statuses: StatusBatch | None,
    details: DetailBatch | None,
    *,
    lock_timeout: float,
    chunk_no: int = 0,
) -> dict[str, int]:
    """Commit one chunk's rows in a single transaction."""
    logger = get_run_logger()
    rows = assemble_chunk(run_id, statuses, details)
    with store.open_database(
        db_path, timeout=lock_timeout, on_wait=logger.warning, migrate_schema=False
    ) as con:
        return write_chunk(con, run_id, rows)


@task(cache_policy=NO_CACHE)
def finish_sync(
    db_path: str, run_id: str, *, state: str, message: str | None, lock_timeout: float
) -> dict[str, Any]:
    """Close the run's row; return it, with a sample of its errors under ``errors``."""
    with store.open_database(db_path, timeout=lock_timeout, migrate_schema=False) as con:
        store.finish_run(con, run_id, state=state, message=message)
        return store.fetch_run(con, run_id) | {"errors": store.error_sample(con, run_id)}
