"""Writing the DuckDB file. It happens in the flow's process: one writer per database."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture

from haiper_sync import store
from haiper_sync.errors import DatabaseLocked
from haiper_sync.manifest import Plan, plan_run
from haiper_sync.spill import ingest_spills, spill_chunk, spill_run_end
from haiper_sync.summary import RunSummary
from haiper_sync.sync import ChunkRows, write_chunk


@task(cache_policy=NO_CACHE)
def prepare_sync(
    db_path: str,
    run: RunSummary,
    *,
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
        store.start_run(
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
        )
        store.add_run_counts(con, run.run_id, plan.counts())
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
        with store.open_database(
            db_path, timeout=lock_timeout, on_wait=logger.warning, migrate_schema=False
        ) as con:
            ingest_spills(con, db_path)
            store.finish_run(con, tally.run_id, state=state, message=message)
            summary = store.fetch_run(con, tally.run_id)
            errors = store.error_sample(con, tally.run_id)
        summary.chunks_set_aside = tally.chunks_set_aside
        return summary, errors
    except DatabaseLocked as locked:
        folder = spill_run_end(db_path, tally.run_id, state, message)
        logger.warning("%s The run's end is set aside in %s.", locked, folder)
        tally.state, tally.message = state, message
        tally.finished_at, tally.end_set_aside = datetime.now(UTC), True
        return tally, []


class ChunkWriter:
    """Writes a run's chunks in order as their futures finish, and keeps the run's tally.

    A chunk that finds the file held by someone else past the lock timeout is set aside in
    ``<db>.pending/``; once that happened, the next writes wait only briefly (and set their
    chunk aside too) instead of stalling the whole run for the full timeout each.
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
            with store.open_database(
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
