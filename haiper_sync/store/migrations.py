"""The DuckDB schema, as ordered migrations; the version lives in the file itself."""

from __future__ import annotations

import duckdb

from haiper_sync.errors import ForeignDatabase, SchemaError, SchemaTooNew
from haiper_sync.store.failures import transaction
from haiper_sync.store.sql import duckdb_message, scalar

# Each entry upgrades the schema by one version. Never edit a released entry: append a new one.
MIGRATIONS: list[str] = [
    # 1: the five tables of the sync.
    """
    CREATE TABLE creations (
        creation_id      VARCHAR PRIMARY KEY,
        user_id          VARCHAR,
        username         VARCHAR,
        avatar           VARCHAR,
        type             VARCHAR,
        input_type       VARCHAR,
        output_type      VARCHAR,
        prompt           VARCHAR,
        negative_prompt  VARCHAR,
        create_time      TIMESTAMPTZ,
        update_time      TIMESTAMPTZ,
        create_time_raw  VARCHAR,
        update_time_raw  VARCHAR,
        status           VARCHAR,
        video_url        VARCHAR,
        thumbnail_url    VARCHAR,
        fps              DOUBLE,
        width            INTEGER,
        height           INTEGER,
        like_count       BIGINT,
        is_like          BOOLEAN,
        collects_count   BIGINT,
        is_collect       BOOLEAN,
        output_count     INTEGER,
        notes            VARCHAR,
        raw_json         JSON,
        first_synced_at  TIMESTAMPTZ NOT NULL,
        last_synced_at   TIMESTAMPTZ NOT NULL,
        last_run_id      VARCHAR
    );
    CREATE TABLE creation_outputs (
        creation_id    VARCHAR NOT NULL,
        output_id      VARCHAR NOT NULL,
        position       INTEGER NOT NULL,
        media_url      VARCHAR,
        thumbnail_url  VARCHAR,
        PRIMARY KEY (creation_id, output_id)
    );
    CREATE TABLE creation_status (
        creation_id      VARCHAR PRIMARY KEY,
        status           VARCHAR,
        progress         DOUBLE,
        first_seen_at    TIMESTAMPTZ NOT NULL,
        last_checked_at  TIMESTAMPTZ,
        checks           INTEGER NOT NULL DEFAULT 0,
        last_run_id      VARCHAR,
        last_error       VARCHAR
    );
    CREATE TABLE sync_runs (
        run_id           VARCHAR PRIMARY KEY,
        flow_run_id      VARCHAR,
        started_at       TIMESTAMPTZ NOT NULL,
        finished_at      TIMESTAMPTZ,
        state            VARCHAR NOT NULL,
        manifest         VARCHAR,
        refresh          BOOLEAN,
        ids_in_manifest  BIGINT DEFAULT 0,
        ids_rejected     BIGINT DEFAULT 0,
        ids_skipped      BIGINT DEFAULT 0,
        ids_checked      BIGINT DEFAULT 0,
        ids_fetched      BIGINT DEFAULT 0,
        ids_succeeded    BIGINT DEFAULT 0,
        ids_failed       BIGINT DEFAULT 0,
        ids_pending      BIGINT DEFAULT 0,
        ids_errored      BIGINT DEFAULT 0,
        rows_inserted    BIGINT DEFAULT 0,
        rows_updated     BIGINT DEFAULT 0,
        requests         BIGINT DEFAULT 0,
        retries          BIGINT DEFAULT 0,
        message          VARCHAR
    );
    CREATE TABLE sync_errors (
        run_id       VARCHAR NOT NULL,
        creation_id  VARCHAR NOT NULL,
        stage        VARCHAR NOT NULL,
        http_status  INTEGER,
        error_code   VARCHAR,
        message      VARCHAR NOT NULL,
        raw_body     VARCHAR,
        deferred     BOOLEAN NOT NULL DEFAULT false,
        occurred_at  TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (run_id, creation_id, stage)
    );
    """,
    # 2: the analyst's views (documented in docs/schema.md).
    """
    CREATE OR REPLACE VIEW creations_overview AS
    SELECT s.creation_id, s.status, s.progress, c.prompt, c.type, c.width, c.height, c.fps,
           c.output_count, c.like_count, c.username, s.first_seen_at, s.last_checked_at,
           s.checks, c.last_synced_at, s.last_error
    FROM creation_status AS s
    LEFT JOIN creations AS c ON c.creation_id = s.creation_id;

    -- Only IDs with a detail have a create_time, and details are fetched for `succeed` IDs
    -- only: the other IDs land in one row with day NULL instead of vanishing.
    CREATE OR REPLACE VIEW daily_creations AS
    SELECT CAST(c.create_time AT TIME ZONE 'UTC' AS DATE) AS day,
           count(*) AS created,
           count(*) FILTER (WHERE s.status = 'succeed') AS succeeded,
           count(*) FILTER (WHERE s.status = 'failed') AS failed,
           round(count(*) FILTER (WHERE s.status = 'failed') / count(*), 3) AS share_failed,
           round(median(epoch(c.update_time) - epoch(c.create_time)), 1)
               AS median_seconds_to_update
    FROM creation_status AS s
    LEFT JOIN creations AS c ON c.creation_id = s.creation_id
    GROUP BY ALL
    ORDER BY day NULLS LAST;

    CREATE OR REPLACE VIEW pending_creations AS
    SELECT creation_id, status, progress, first_seen_at, last_checked_at,
           now() - first_seen_at AS age, checks, last_error
    FROM creation_status
    WHERE status IS NULL OR status NOT IN ('succeed', 'failed')
    ORDER BY first_seen_at, creation_id;

    CREATE OR REPLACE VIEW recent_errors AS
    SELECT e.run_id, e.stage, e.creation_id, e.http_status, e.error_code, e.message,
           e.occurred_at, e.deferred
    FROM sync_errors AS e
    WHERE e.run_id = (SELECT run_id FROM sync_runs ORDER BY started_at DESC, run_id DESC LIMIT 1)
    ORDER BY e.stage, e.creation_id;

    CREATE OR REPLACE VIEW outputs_flat AS
    SELECT o.creation_id, o.output_id, o.position, o.media_url, o.thumbnail_url,
           c.prompt, c.user_id, c.username, c.type, c.create_time
    FROM creation_outputs AS o
    LEFT JOIN creations AS c ON c.creation_id = o.creation_id;
    """,
    # 3: the per-creation tables without primary-key indexes. Keeping a key's ART index current
    # made each chunk's write load most of it: +120 MB and 0.7 s per write against a
    # million-row table. Writes are MERGEs (a hash join on the chunk's few IDs) and one sync
    # writes a file at a time, so a key stays unique without the index.
    """
    CREATE TABLE creations_v3 (
        creation_id      VARCHAR NOT NULL,
        user_id          VARCHAR,
        username         VARCHAR,
        avatar           VARCHAR,
        type             VARCHAR,
        input_type       VARCHAR,
        output_type      VARCHAR,
        prompt           VARCHAR,
        negative_prompt  VARCHAR,
        create_time      TIMESTAMPTZ,
        update_time      TIMESTAMPTZ,
        create_time_raw  VARCHAR,
        update_time_raw  VARCHAR,
        status           VARCHAR,
        video_url        VARCHAR,
        thumbnail_url    VARCHAR,
        fps              DOUBLE,
        width            INTEGER,
        height           INTEGER,
        like_count       BIGINT,
        is_like          BOOLEAN,
        collects_count   BIGINT,
        is_collect       BOOLEAN,
        output_count     INTEGER,
        notes            VARCHAR,
        raw_json         JSON,
        first_synced_at  TIMESTAMPTZ NOT NULL,
        last_synced_at   TIMESTAMPTZ NOT NULL,
        last_run_id      VARCHAR
    );
    CREATE TABLE creation_outputs_v3 (
        creation_id    VARCHAR NOT NULL,
        output_id      VARCHAR NOT NULL,
        position       INTEGER NOT NULL,
        media_url      VARCHAR,
        thumbnail_url  VARCHAR
    );
    CREATE TABLE creation_status_v3 (
        creation_id      VARCHAR NOT NULL,
        status           VARCHAR,
        progress         DOUBLE,
        first_seen_at    TIMESTAMPTZ NOT NULL,
        last_checked_at  TIMESTAMPTZ,
        checks           INTEGER NOT NULL DEFAULT 0,
        last_run_id      VARCHAR,
        last_error       VARCHAR
    );
    INSERT INTO creations_v3 SELECT * FROM creations;
    DROP TABLE creations;
    ALTER TABLE creations_v3 RENAME TO creations;
    INSERT INTO creation_outputs_v3 SELECT * FROM creation_outputs;
    DROP TABLE creation_outputs;
    ALTER TABLE creation_outputs_v3 RENAME TO creation_outputs;
    INSERT INTO creation_status_v3 SELECT * FROM creation_status;
    DROP TABLE creation_status;
    ALTER TABLE creation_status_v3 RENAME TO creation_status;
    """,
    # 4: every change of status a check observed, and each creation's time queued and processing.
    """
    CREATE TABLE creation_status_history (
        creation_id  VARCHAR NOT NULL,
        status       VARCHAR NOT NULL,
        progress     DOUBLE,
        observed_at  TIMESTAMPTZ NOT NULL,
        run_id       VARCHAR
    );
    -- An existing file starts its history with each ID's latest known status.
    INSERT INTO creation_status_history
    SELECT creation_id, status, progress, coalesce(last_checked_at, first_seen_at), last_run_id
    FROM creation_status WHERE status IS NOT NULL;

    CREATE OR REPLACE VIEW creation_timings AS
    WITH spans AS (
        SELECT creation_id, status, observed_at,
               lead(observed_at) OVER (PARTITION BY creation_id ORDER BY observed_at) AS until
        FROM creation_status_history
    )
    SELECT creation_id,
           min(observed_at) AS first_observed_at,
           min(observed_at) FILTER (WHERE status IN ('succeed', 'failed')) AS finished_observed_at,
           to_seconds(sum(epoch(until) - epoch(observed_at)) FILTER (WHERE status = 'pending'))
               AS time_queued,
           to_seconds(sum(epoch(until) - epoch(observed_at))
                      FILTER (WHERE status IN ('processing', 'post_processing')))
               AS time_processing,
           count(*) AS observations
    FROM spans
    GROUP BY creation_id;
    """,
    # 5: when to ask about an ID again (back-off for unchanged answers, give up on 404s).
    """
    ALTER TABLE creation_status ADD COLUMN unchanged_checks INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE creation_status ADD COLUMN next_check_at TIMESTAMPTZ;
    ALTER TABLE creation_status ADD COLUMN not_found_since TIMESTAMPTZ;
    ALTER TABLE sync_runs ADD COLUMN ids_not_due BIGINT NOT NULL DEFAULT 0;

    CREATE OR REPLACE VIEW pending_creations AS
    SELECT creation_id, status, progress, first_seen_at, last_checked_at,
           now() - first_seen_at AS age, checks, last_error
    FROM creation_status
    WHERE status IS NULL OR status NOT IN ('succeed', 'failed', 'not_found')
    ORDER BY first_seen_at, creation_id;
    """,
    # 6: the engagement counters each time a fetch saw them change (likes over time).
    """
    CREATE TABLE creation_engagement_history (
        creation_id     VARCHAR NOT NULL,
        like_count      BIGINT,
        collects_count  BIGINT,
        is_like         BOOLEAN,
        is_collect      BOOLEAN,
        observed_at     TIMESTAMPTZ NOT NULL,
        run_id          VARCHAR
    );
    -- An existing file starts each creation's history with the counters it has.
    INSERT INTO creation_engagement_history
    SELECT creation_id, like_count, collects_count, is_like, is_collect, last_synced_at,
           last_run_id
    FROM creations;
    """,
    # 7: the media archive: one row per file of a creation (its outputs' media and thumbnails,
    # its cover), what is not archived yet, and where each output's files are kept.
    """
    CREATE TABLE creation_media (
        creation_id   VARCHAR NOT NULL,
        output_id     VARCHAR,
        kind          VARCHAR NOT NULL,
        source_url    VARCHAR,
        stored_url    VARCHAR,
        bytes         BIGINT,
        sha256        VARCHAR,
        content_type  VARCHAR,
        archived_at   TIMESTAMPTZ,
        attempts      INTEGER NOT NULL DEFAULT 0,
        last_error    VARCHAR
    );

    -- Every file a creation has links to; the cover only when it is not one of its outputs'.
    CREATE OR REPLACE VIEW media_not_archived AS
    WITH wanted AS (
        SELECT creation_id, output_id, 'media' AS kind, media_url AS url
        FROM creation_outputs WHERE media_url IS NOT NULL
        UNION ALL
        SELECT creation_id, output_id, 'thumbnail', thumbnail_url
        FROM creation_outputs WHERE thumbnail_url IS NOT NULL
        UNION ALL
        SELECT c.creation_id, NULL, 'cover', c.thumbnail_url
        FROM creations AS c
        WHERE c.thumbnail_url IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM creation_outputs AS o
            WHERE o.creation_id = c.creation_id
              AND split_part(c.thumbnail_url, '?', 1) IN (split_part(o.media_url, '?', 1),
                                                          split_part(o.thumbnail_url, '?', 1)))
    )
    SELECT w.creation_id, w.output_id, w.kind, split_part(w.url, '?', 1) AS source_url,
           to_timestamp(TRY_CAST(regexp_extract(w.url, '[?&]Expires=([0-9]+)', 1) AS BIGINT))
               AS link_expires_at,
           coalesce(m.attempts, 0) AS attempts, m.last_error
    FROM wanted AS w
    LEFT JOIN creation_media AS m
           ON m.creation_id = w.creation_id AND m.output_id IS NOT DISTINCT FROM w.output_id
          AND m.kind = w.kind
    WHERE m.bytes IS NULL OR m.sha256 IS NULL
    ORDER BY link_expires_at NULLS LAST, w.creation_id, w.output_id, w.kind;

    CREATE OR REPLACE VIEW outputs_flat AS
    SELECT o.creation_id, o.output_id, o.position, o.media_url, o.thumbnail_url,
           c.prompt, c.user_id, c.username, c.type, c.create_time,
           m.stored_url AS media_stored_url, t.stored_url AS thumbnail_stored_url
    FROM creation_outputs AS o
    LEFT JOIN creations AS c ON c.creation_id = o.creation_id
    LEFT JOIN creation_media AS m
           ON m.creation_id = o.creation_id AND m.output_id = o.output_id AND m.kind = 'media'
          AND m.sha256 IS NOT NULL
    LEFT JOIN creation_media AS t
           ON t.creation_id = o.creation_id AND t.output_id = o.output_id
          AND t.kind = 'thumbnail' AND t.sha256 IS NOT NULL;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The version the file is at (0 for an empty file)."""
    exists = scalar(
        con, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    )
    if not exists:
        return 0
    return int(scalar(con, "SELECT coalesce(max(version), 0) FROM schema_version"))


def user_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables and views in the file's main schema (haiper-sync's or anyone's)."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "ORDER BY table_name"
    ).fetchall()
    return [str(name) for (name,) in rows]


def refuse_foreign(con: duckdb.DuckDBPyConnection) -> None:
    """Raise `ForeignDatabase` if the file has tables but no haiper-sync schema."""
    if schema_version(con) == 0 and (theirs := user_tables(con)):
        shown = ", ".join(theirs[:5]) + (", ..." if len(theirs) > 5 else "")
        raise ForeignDatabase(
            f"has tables ({shown}) but no haiper-sync schema: not ours, left untouched; "
            "give another --db, or --init-existing to add haiper-sync's tables to it"
        )


def migrate(con: duckdb.DuckDBPyConnection, *, init_existing: bool = False) -> int:
    """Apply pending migrations in order, each in its own transaction; return the new version.

    A file with tables but no haiper-sync schema is someone else's: it is refused, untouched,
    unless ``init_existing`` says to add haiper-sync's tables beside its own.
    """
    current = schema_version(con)
    if current == SCHEMA_VERSION:
        return current
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"database schema v{current} is newer than this haiper-sync (v{SCHEMA_VERSION}); "
            "upgrade haiper-sync"
        )
    if not init_existing:
        refuse_foreign(con)
    for version in range(current + 1, SCHEMA_VERSION + 1):
        try:
            with transaction(con):
                # Inside the first migration's transaction: a failed one leaves no trace.
                con.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version "
                    "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
                )
                con.execute(MIGRATIONS[version - 1])
                con.execute("INSERT INTO schema_version VALUES (?, now())", [version])
        except duckdb.Error as error:
            # A storage failure left `transaction` as a StorageError: this is about the schema.
            first = duckdb_message(error)
            raise SchemaError(f"cannot apply haiper-sync's schema v{version}: {first}") from None
    return SCHEMA_VERSION
