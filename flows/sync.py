"""The ``sync_creations`` flow: manifest → status → detail → DuckDB."""

from __future__ import annotations

import glob
import tempfile
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger, runtime
from prefect.futures import PrefectFuture
from pydantic import Field

from haiper_sync.engine import ApiConfig
from haiper_sync.errors import HaiperSyncError
from haiper_sync.locks import sync_lock
from haiper_sync.manifest import auto_chunk_size, chunk_size_for, iter_chunks
from haiper_sync.settings import DEFAULT_API_URL, DEFAULT_RATE_LIMIT, load_settings
from haiper_sync.summary import RunSummary
from haiper_sync.sync import ChunkRows
from tasks import (
    ChunkWriter,
    RunProgress,
    fetch_chunk,
    finish_sync,
    prepare_sync,
    publish_summary,
    resolve_api_key,
)
from tasks.runners import CHUNKS_IN_FLIGHT, build_task_runner, fetching_processes, run_engine


def _run_name() -> str:
    manifest = Path(str(runtime.flow_run.parameters.get("manifest", "manifest")))
    # A glob (`manifests/*.txt`) is named after its folder, a file after itself.
    stem = (manifest.parent.name if glob.has_magic(str(manifest)) else manifest.stem) or "manifest"
    return f"sync-{stem}-{datetime.now(UTC):%Y-%m-%d-%H%M}"


@flow(
    name="sync-creations",
    flow_run_name=_run_name,
    task_runner=build_task_runner(load_settings()),
    validate_parameters=True,
)
def sync_creations(
    manifest: str,
    db_path: str = "haiper.duckdb",
    api_url: str = DEFAULT_API_URL,
    concurrency: Annotated[int, Field(ge=1, le=256)] = 16,
    refresh: bool = False,
    rate_limit: Annotated[int, Field(ge=1, le=1_000_000)] = DEFAULT_RATE_LIMIT,
    chunk_size: Annotated[int, Field(ge=0, le=10_000)] = 0,
) -> RunSummary:
    """Mirror the creations listed in a manifest into a DuckDB file.

    Args:
        manifest: Path or glob of the manifest file(s): one creation ID per line, `#` comments.
        db_path: DuckDB file to write; created with its schema if missing.
        api_url: Base URL of the Haiper API (or of the bundled simulator).
        concurrency: Requests in flight at once.
        refresh: Re-check and re-fetch IDs already finished in the database.
        rate_limit: Requests per minute this run may send (the API allows 500 by default).
        chunk_size: IDs per task run; 0 sizes it from the rate limit (250 at 500 requests a
            minute, up to 1,000 for a raised limit). Grown so a run has at most 500 chunks.
    """
    logger = get_run_logger()
    settings = load_settings()
    api_key = resolve_api_key()
    processes = fetching_processes()
    api = ApiConfig.from_settings(
        settings,
        api_url=api_url,
        concurrency=max(1, concurrency // processes),
        rate_limit=max(1, rate_limit // processes),
    )
    requested_size = chunk_size or settings.chunk_size or auto_chunk_size(rate_limit)
    lock_timeout = settings.lock_timeout
    tally = RunSummary(
        run_id=uuid.uuid4().hex,
        manifest=manifest,
        refresh=refresh,
        started_at=datetime.now(UTC),
        flow_run_id=str(runtime.flow_run.id or "") or None,
    )
    state, message = "completed", None
    writer = ChunkWriter(db_path, tally, lock_timeout, logger)
    with (
        sync_lock(db_path, timeout=lock_timeout),
        tempfile.TemporaryDirectory(prefix="haiper-sync-") as work,
    ):
        try:
            plan = prepare_sync(
                db_path,
                tally,
                todo_path=Path(work) / "todo.parquet",
                chunk_size=requested_size,
                lock_timeout=lock_timeout,
            )
            size = chunk_size_for(plan.todo, requested_size, settings.max_chunks)
            logger.info(
                "Manifest: %d IDs (%d rejected, %d already finished); %d to sync in chunks of %d",
                plan.ids_in_manifest,
                plan.ids_rejected,
                plan.ids_skipped,
                plan.todo,
                size,
            )
            tally.add(plan.counts())
            progress = RunProgress(tally.run_id, plan.todo)
            in_flight: deque[tuple[int, PrefectFuture[ChunkRows]]] = deque()
            with run_engine(api, api_key) as engine:
                for chunk_no, chunk in enumerate(iter_chunks(plan.todo_path, size)):
                    to_check = [i for i, needs_status in chunk if needs_status]
                    to_fetch = [i for i, needs_status in chunk if not needs_status]
                    rows = fetch_chunk.submit(to_check, to_fetch, engine, tally.run_id, chunk_no)
                    in_flight.append((chunk_no, rows))
                    if len(in_flight) >= CHUNKS_IN_FLIGHT:
                        progress.advance(writer.write(*in_flight.popleft()))
                while in_flight:
                    progress.advance(writer.write(*in_flight.popleft()))
        except BaseException as error:
            state, message = "failed", _one_line(error)
            raise
        finally:
            try:
                summary, errors = finish_sync(
                    db_path, tally, state=state, message=message, lock_timeout=lock_timeout
                )
                publish_summary(summary, errors)
            except Exception as finish_error:
                if state == "completed":
                    raise
                # Never mask the error that failed the run with one about recording it.
                logger.error("Could not record the end of run %s: %s", tally.run_id, finish_error)
    logger.info("Done: %s", summary.headline())
    return summary


def _one_line(error: BaseException) -> str:
    # Our own errors are written to be read as they are; anything else needs its type.
    if isinstance(error, HaiperSyncError):
        return str(error)
    return f"{type(error).__name__}: {error}"
