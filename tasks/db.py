"""Tasks that write the DuckDB file. They run in the flow's process: one writer per database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture

from haiper_sync import store
from haiper_sync.errors import DatabaseLocked
from haiper_sync.manifest import Plan, plan_run
from haiper_sync.pipeline import DetailBatch, StatusBatch
from haiper_sync.spill import ingest_spills, spill_chunk, spill_run_end
from haiper_sync.sync import assemble_chunk, write_chunk
from tasks.runners import as_is


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
        leftovers = ingest_spills(con, db_path)
        if leftovers:
            logger.info("Wrote %d chunk(s) an earlier run had to set aside", leftovers)
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
        store.add_run_counts(con, run_id, plan.counts())
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
    """Commit one chunk's rows in a single transaction, or set them aside if the file is held.

    Returns the chunk's counters, with ``spilled`` = 1 when the rows were set aside.
    """
    logger = get_run_logger()
    rows = assemble_chunk(run_id, statuses, details)
    try:
        with store.open_database(
            db_path, timeout=lock_timeout, on_wait=logger.warning, migrate_schema=False
        ) as con:
            ingest_spills(con, db_path)
            return write_chunk(con, run_id, rows) | {"spilled": 0}
    except DatabaseLocked as locked:
        folder = spill_chunk(db_path, run_id, chunk_no, rows)
        logger.warning(
            "%s Chunk %d set aside in %s until the file is free.", locked, chunk_no, folder
        )
        return rows.counts | {"spilled": 1}


@task(cache_policy=NO_CACHE)
def finish_sync(
    db_path: str,
    run_id: str,
    *,
    state: str,
    message: str | None,
    lock_timeout: float,
    totals: dict[str, Any],
) -> dict[str, Any]:
    """Close the run's row; return it, with a sample of its errors under ``errors``.

    If the file is held, the run's end is set aside like a chunk and ``totals`` (the flow's
    own tally) stands in for the row.
    """
    logger = get_run_logger()
    try:
        with store.open_database(
            db_path, timeout=lock_timeout, on_wait=logger.warning, migrate_schema=False
        ) as con:
            ingest_spills(con, db_path)
            store.finish_run(con, run_id, state=state, message=message)
            return store.fetch_run(con, run_id) | {"errors": store.error_sample(con, run_id)}
    except DatabaseLocked as locked:
        folder = spill_run_end(db_path, run_id, state, message)
        logger.warning("%s The run's end is set aside in %s.", locked, folder)
        return totals | {"run_id": run_id, "state": state, "message": message, "errors": []}


class ChunkWriter:
    """Writes a run's chunks in order as their futures finish, and keeps the run's tally.

    Once a write found the file held by someone else, the next ones wait only briefly (and set
    their chunk aside too) instead of stalling the whole run for the full lock timeout each.
    """

    BRIEF_WAIT = 1.0

    def __init__(self, db_path: str, run_id: str, lock_timeout: float) -> None:
        self.db_path, self.run_id, self.lock_timeout = db_path, run_id, lock_timeout
        self._wait = lock_timeout
        self.set_aside = 0
        self.totals: dict[str, int] = dict.fromkeys(store.RUN_COUNTERS, 0)

    def _add(self, counts: dict[str, int]) -> None:
        for name, value in counts.items():
            self.totals[name] += value

    def count_plan(self, plan: Plan) -> None:
        """Add the manifest's counts to the tally."""
        self._add(plan.counts())

    def write(
        self,
        chunk_no: int,
        statuses: PrefectFuture[StatusBatch] | None,
        details: PrefectFuture[DetailBatch],
    ) -> int:
        """Wait for a chunk's results, commit them; return how many IDs the chunk held."""
        status_batch = statuses.result() if statuses else None
        detail_batch = details.result()
        counts = write_results(
            self.db_path,
            self.run_id,
            as_is(status_batch),
            as_is(detail_batch),
            lock_timeout=self._wait,
            chunk_no=chunk_no,
        )
        spilled = counts.pop("spilled")
        self.set_aside += spilled
        self._wait = self.BRIEF_WAIT if spilled else self.lock_timeout
        self._add(counts)
        checked = {o.creation_id for o in status_batch.outcomes} if status_batch else set()
        return len(checked | {o.creation_id for o in detail_batch.outcomes})
