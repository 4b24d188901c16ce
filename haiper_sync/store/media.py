"""The media archive's bookkeeping in ``creation_media``: what is left to fetch, what was kept.

Bulk like the rest of the store: Arrow tables in, one set-based statement, counts out.
"""

from __future__ import annotations

import duckdb

from haiper_sync.rows import MediaRow, as_arrow
from haiper_sync.store.sql import scalar
from haiper_sync.store.writes import with_registered

# The files of the `media_not_archived` view (migration 7), with the signed link itself: the
# archive needs it to download; the view must not show it.
_PENDING = """
SELECT v.creation_id, v.output_id, v.kind,
       CASE v.kind WHEN 'media' THEN o.media_url
                   WHEN 'thumbnail' THEN o.thumbnail_url
                   ELSE c.thumbnail_url END AS url
FROM media_not_archived AS v
LEFT JOIN creation_outputs AS o ON o.creation_id = v.creation_id AND o.output_id = v.output_id
LEFT JOIN creations AS c ON c.creation_id = v.creation_id
ORDER BY v.creation_id, o.position NULLS LAST, v.kind
"""


def media_to_archive(
    con: duckdb.DuckDBPyConnection,
) -> list[tuple[str, str | None, str, str]]:
    """(creation_id, output_id, kind, signed url) of every file not archived whole yet."""
    rows = con.execute(_PENDING).fetchall()
    return [(str(c), None if o is None else str(o), str(k), str(u)) for c, o, k, u in rows]


def archived_count(con: duckdb.DuckDBPyConnection) -> int:
    """Files already archived whole (bytes and sha256 recorded)."""
    return int(
        scalar(
            con,
            "SELECT count(*) FROM creation_media WHERE bytes IS NOT NULL AND sha256 IS NOT NULL",
        )
    )


def record_media(con: duckdb.DuckDBPyConnection, rows: list[MediaRow]) -> int:
    """Insert or update one ``creation_media`` row per file; return the rows given.

    Attempts add up across runs; a failure never erases a file archived before.
    """
    if not rows:
        return 0
    with_registered(
        con,
        as_arrow(rows, MediaRow),
        """
        MERGE INTO creation_media AS m
        USING (
            SELECT * FROM {incoming}
            -- One row per file: DuckDB's MERGE would silently keep the first of duplicates.
            QUALIFY row_number() OVER (PARTITION BY creation_id, output_id, kind
                                       ORDER BY archived_at DESC NULLS LAST) = 1
        ) AS i
        ON m.creation_id = i.creation_id AND m.output_id IS NOT DISTINCT FROM i.output_id
           AND m.kind = i.kind
        WHEN MATCHED AND i.sha256 IS NOT NULL THEN UPDATE SET
            source_url = i.source_url, stored_url = i.stored_url, bytes = i.bytes,
            sha256 = i.sha256, content_type = i.content_type, archived_at = i.archived_at,
            attempts = m.attempts + i.attempts, last_error = NULL
        WHEN MATCHED THEN UPDATE SET
            attempts = m.attempts + i.attempts, last_error = i.last_error,
            source_url = coalesce(m.source_url, i.source_url)
        WHEN NOT MATCHED THEN INSERT (creation_id, output_id, kind, source_url, stored_url,
                                      bytes, sha256, content_type, archived_at, attempts,
                                      last_error)
            VALUES (i.creation_id, i.output_id, i.kind, i.source_url, i.stored_url, i.bytes,
                    i.sha256, i.content_type, i.archived_at, i.attempts, i.last_error)
        """,
    )
    return len(rows)
