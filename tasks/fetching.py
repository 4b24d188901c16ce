"""The task that talks to the Haiper API (it may run on a Dask worker: inputs and output pickle)."""

from __future__ import annotations

from concurrent.futures import CancelledError

from prefect import task
from prefect.cache_policies import NO_CACHE

from haiper_sync.api.engine import EngineClosed, HttpEngine, WorkerEngine
from haiper_sync.rows import ChunkRows
from haiper_sync.sync import fetch
from haiper_sync.sync.assemble import assemble_chunk
from haiper_sync.sync.plan import Chunk


# No task retries: every request is retried in the core, and what the core raises (a 401, the
# API unreachable) would fail again. Never cached: the answers change over time.
@task(task_run_name="fetch-chunk-{chunk_no}", cache_policy=NO_CACHE)
def fetch_chunk(
    chunk: Chunk,
    engine: HttpEngine | WorkerEngine,
    run_id: str,
    chunk_no: int = 0,
) -> ChunkRows:
    """Check a chunk's statuses, fetch the details of those that succeeded; return its rows.

    A chunk still in flight when its run stops (a signal, a 401) returns no rows, quietly:
    the run has stopped writing, and its own record says why.
    """
    try:
        statuses, details = engine.run(
            lambda client: fetch.request_chunk(
                client, chunk, engine.config.retry, on_done=engine.count_done
            )
        )
    except (EngineClosed, CancelledError):
        return ChunkRows()
    return assemble_chunk(run_id, statuses, details)
