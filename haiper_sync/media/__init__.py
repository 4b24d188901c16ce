"""The media archive: keep creations' files, not just their expiring signed links.

    summary = await archive_media(db_path, "s3://bucket/prefix", settings=settings,
                                  run_id=run_id, refresher=detail_refresher(client, db_path,
                                  run_id=run_id), progress=on_progress)

Pure core: no Prefect. Files go to any obstore destination (a directory, s3://, gs://, az://).
"""

from __future__ import annotations

from haiper_sync.media.archive import (
    ArchiveProgress,
    ArchiveSummary,
    Links,
    Progress,
    Refresher,
    archive_media,
    links_of,
)
from haiper_sync.media.plan import MediaFile, media_key, plan_files
from haiper_sync.media.refresh import detail_refresher

__all__ = [
    "ArchiveProgress",
    "ArchiveSummary",
    "Links",
    "MediaFile",
    "Progress",
    "Refresher",
    "archive_media",
    "detail_refresher",
    "links_of",
    "media_key",
    "plan_files",
]
