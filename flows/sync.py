"""The ``sync_creations`` flow: manifest → status → detail → DuckDB."""

from __future__ import annotations

import glob
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from prefect import flow, runtime
from pydantic import Field

from flows.engine import build_task_runner
from flows.reporting import run_options, sync_run
from haiper_sync.settings import DEFAULTS, ManifestFormat, Strategy, bounds, load_settings
from haiper_sync.summary import RunSummary
from haiper_sync.sync.plan import iter_chunks
from haiper_sync.sync.run import ahead
from tasks import archive_creations_media, fetch_chunk, prepare_sync

# The UI form's bounds are the settings' own; 0 (or "") leaves a value to HAIPER_* or the default.
MOST = {
    name: bounds(name)[1]
    for name in ("concurrency", "rate_limit", "chunk_size", "media_concurrency")
}


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
    db_path: str = "",
    api_url: str = "",
    concurrency: Annotated[int, Field(ge=0, le=MOST["concurrency"])] = 0,
    refresh: bool = False,
    rate_limit: Annotated[int, Field(ge=0, le=MOST["rate_limit"])] = 0,
    chunk_size: Annotated[int, Field(ge=0, le=MOST["chunk_size"])] = 0,
    init_existing: bool = False,
    max_requests: Annotated[int, Field(ge=0)] = 0,
    strategy: Strategy = "status-first",
    recheck_all: bool = False,
    refresh_older_than: Annotated[str, Field(pattern=r"^(\s*[1-9]\d*\s*[smhd]\s*)?$")] = "",
    manifest_format: ManifestFormat = "auto",
    max_error_ratio: Annotated[float, Field(ge=0, le=1)] = DEFAULTS.max_error_ratio,
    archive_media: str = "",
    media_concurrency: Annotated[int, Field(ge=0, le=MOST["media_concurrency"])] = 0,
) -> RunSummary:
    """Mirror the creations listed in a manifest into a DuckDB file.

    Args:
        manifest: Path or glob of the manifest file(s): one creation ID per line (`#` comments),
            or CSV, Parquet, JSON files with a `creation_id` column.
        db_path: DuckDB file to write; created with its schema if missing. Empty: HAIPER_DB of
            the process running the flow, else haiper.duckdb.
        api_url: Base URL of the Haiper API (or of the bundled simulator). Empty: HAIPER_API_URL,
            else https://api.haiper.ai.
        concurrency: Requests in flight at once. 0: HAIPER_CONCURRENCY, else 16.
        refresh: Re-check and re-fetch IDs already finished in the database.
        rate_limit: Requests per minute this run may send. 0: HAIPER_RATE_LIMIT, else 500 (the
            API's default quota).
        chunk_size: IDs per task run. 0: HAIPER_CHUNK_SIZE, else sized from the rate limit
            (250 at 500 requests a minute, up to 1,000 for a raised limit). Grown so a run has
            at most 500 chunks.
        init_existing: Add haiper-sync's tables to a DuckDB file that already has other tables
            (without it such a file is refused and left untouched).
        max_requests: At most this many requests in this run (retries included), e.g. the
            nightly sync's share of the quota; what is not reached is left for the next run.
            0: no budget.
        strategy: `status-first` (the API's documented way: a status check, then the detail of
            what succeeded) or `detail-first`: an ID never seen before is asked for its detail
            directly: one request instead of two when it succeeded, two instead of one when it
            failed or has not finished (pays on backlogs of finished creations).
        recheck_all: Ask about every unfinished ID now, ignoring the back-off schedule (an ID
            whose answer did not change waits 20 h, then twice as long each time, up to 4 days)
            and IDs given up on as `not_found`.
        refresh_older_than: Fetch again the details of succeeded creations last synced longer
            ago than this (`7d`, `12h`), oldest first, after the rest: fresh likes, collects and
            signed URLs; a change of likes or collects is kept in creation_engagement_history.
            Empty: no re-fetch.
        manifest_format: `auto` (by extension: .csv/.tsv, .parquet, .json/.ndjson/.jsonl, else
            one ID per line), or one format for every file. CSV, Parquet and JSON manifests
            need a `creation_id` column; other columns are ignored.
        max_error_ratio: The run ends Failed (and emits `haiper-sync.run.failed`) when more
            than this share of the manifest's IDs errored in it (404s, refusals, unusable
            bodies); 0.2 by default. Their rows are kept either way.
        archive_media: Where to keep every stored creation's media files (videos, images)
            before their signed links expire: a directory, or `s3://bucket/prefix`, `gs://`,
            `az://`. Empty: HAIPER_ARCHIVE_MEDIA, else no archive.
        media_concurrency: Media files downloaded at once. 0: HAIPER_MEDIA_CONCURRENCY,
            else 8.
    """
    options = run_options(locals())
    with sync_run(options) as run, run.locked():
        # 1. The manifest, de-duplicated and checked, minus what is already finished.
        plan = run.planned(prepare_sync(options, run.summary, todo_path=run.todo_path))
        with run.engine() as engine:
            # 2-3. Each chunk: statuses, then the details of what succeeded, as rows.
            chunks = iter_chunks(plan.todo_path, run.chunk_size, detail_first=options.detail_first)
            fetched = (
                (chunk_no, fetch_chunk.submit(chunk, engine, run.run_id, chunk_no))
                for chunk_no, chunk in enumerate(chunks)
                if not engine.budget.exhausted
            )
            # 4. Each chunk's rows in one transaction, in order, a few chunks behind the fetching.
            for chunk_no, rows in ahead(fetched):
                run.write(chunk_no, rows)
            # 5. The media of every stored creation, before its signed links expire.
            if options.archive_media:
                run.archived(archive_creations_media(options, engine, run.run_id))
        run.finish()
    # A Failed or Cancelled state returned is the run's final state: a caller then gets its
    # exception (or the state, with return_state=True), never the state as a result.
    return run.outcome  # type: ignore[return-value]
