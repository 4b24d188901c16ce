"""The DuckDB schema, as ordered migrations; the version lives in the file itself."""

from __future__ import annotations

import duckdb

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
]

SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The version the file is at (0 for an empty file)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply pending migrations in order, each in its own transaction; return the new version."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
    )
    current = schema_version(con)
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema v{current} is newer than this haiper-sync (v{SCHEMA_VERSION}); "
            "upgrade haiper-sync"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        con.execute("BEGIN")
        try:
            con.execute(MIGRATIONS[version - 1])
            con.execute("INSERT INTO schema_version VALUES (?, now())", [version])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION
