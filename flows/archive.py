"""The ``archive_creations`` flow: the media of creations an earlier sync stored → a folder or
an object store."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.states import Failed
from pydantic import Field

from flows.engine import resolve_api_key, run_engine
from flows.reporting import our_errors_in_one_line
from haiper_sync.errors import ConfigError, HaiperSyncError
from haiper_sync.media import ArchiveSummary
from haiper_sync.settings import bounds
from haiper_sync.store.lock import sync_lock
from haiper_sync.sync.options import given_by_flow, resolve
from tasks import archive_creations_media


@flow(name="archive-media", flow_run_name="archive-media-{destination}", validate_parameters=True)
def archive_creations(
    destination: str = "",
    db_path: str = "",
    api_url: str = "",
    media_concurrency: Annotated[int, Field(ge=0, le=bounds("media_concurrency")[1])] = 0,
) -> ArchiveSummary | State[Any]:
    """Archive the media of every creation stored in a DuckDB file and not archived yet.

    Args:
        destination: A directory, or `s3://bucket/prefix`, `gs://`, `az://`. Empty:
            HAIPER_ARCHIVE_MEDIA.
        db_path: The DuckDB file an earlier sync wrote. Empty: HAIPER_DB, else haiper.duckdb.
        api_url: The API that gives fresh links for expired ones (one detail request per
            creation). Empty: HAIPER_API_URL, else https://api.haiper.ai.
        media_concurrency: Media files downloaded at once. 0: HAIPER_MEDIA_CONCURRENCY, else 8.
    """
    logger = get_run_logger()
    our_errors_in_one_line()
    given = {"manifest": "", "archive_media": destination, "db_path": db_path, "api_url": api_url}
    try:
        options = resolve(given_by_flow(given | {"media_concurrency": media_concurrency}))
        if not options.archive_media:
            raise ConfigError("no destination: give one, or set HAIPER_ARCHIVE_MEDIA")
        with (
            sync_lock(options.db_path, timeout=options.lock_timeout, on_wait=logger.warning),
            run_engine(options, resolve_api_key()) as engine,
        ):
            summary = archive_creations_media(options, engine, None)
    except HaiperSyncError as error:
        logger.error("%s", error)
        return Failed(message=str(error))
    logger.info("Media: %s", summary.line())
    return summary
