"""The media archive's bookkeeping in ``creation_media``: what is left to fetch, what was kept.

Bulk like the rest of the store: Arrow tables in, one set-based statement, counts out.
"""

from __future__ import annotations

import duckdb

from haiper_sync.rows import MediaRow, as_arrow
from haiper_sync.store.sql import scalar
from haiper_sync.store.writes import _with_registered

# The same files as the `media_not_archived` view (migration 7), with the signed link itself:
# the archive needs it to download, the view must not show it.
_PENDING = """
WITH wanted AS (
    SELECT creation_id, output_id, 'media' AS kind, media_url AS url, position
    FROM creation_outputs WHERE media_url IS NOT NULL
    UNION ALL
    SELECT creation_id, output_id, 'thumbnail', thumbnail_url, position
    FROM creation_outputs WHERE thumbnail_url IS NOT NULL
    UNION ALL
    SELECT c.creation_id, NULL, 'cover', c.thumbnail_url, -1
    FROM creations AS c
    WHERE c.thumbnail_url IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM creation_outputs AS o
        WHERE o.creation_id = c.creation_id
          AND split_part(c.thumbnail_url, '?', 1) IN (split_part(o.media_url, '?', 1),
                                                      split_part(o.thumbnail_url, '?', 1)))
)
SELECT w.creation_id, w.output_id, w.kind, w.url
FROM wanted AS w
LEFT JOIN creation_media AS m
       ON m.creation_id = w.creation_id AND m.output_id IS NOT DISTINCT FROM w.output_id
      AND m.kind = w.kind
WHERE m.bytes IS NULL OR m.sha256 IS NULL
ORDER BY w.creation_id, w.position, w.kind
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
    _with_registered(
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
