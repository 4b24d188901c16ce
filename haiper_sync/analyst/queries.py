"""The analyst's side: read-only SQL, a status report and exports of the DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb

from haiper_sync.errors import HaiperSyncError
from haiper_sync.statuses import sql_not_terminal
from haiper_sync.store.connection import connect
from haiper_sync.store.migrations import SCHEMA_VERSION, schema_version
from haiper_sync.store.sql import duckdb_message, records, scalar, sql_literal
from haiper_sync.summary import RunSummary, human_duration

# Short on purpose: an analyst would rather hear "a sync holds it" than stare at a silent prompt.
DEFAULT_WAIT = 5.0
NO_STATUS = "(no status yet)"
NOT_TERMINAL = sql_not_terminal()

ExportFormat = Literal["parquet", "csv"]
EXPORT_OPTIONS: dict[str, str] = {"parquet": "FORMAT parquet", "csv": "FORMAT csv, HEADER true"}


class AnalystError(HaiperSyncError):
    """An analyst's command cannot do what was asked; the message is one readable line."""


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of one statement (no columns: the statement returned nothing)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class ExportedFile:
    """One relation written to one file."""

    relation: str
    kind: str
    path: Path
    rows: int


@dataclass(frozen=True)
class PendingId:
    """The creation that has waited longest for a final status."""

    creation_id: str
    status: str | None
    first_seen_at: datetime
    checks: int


@dataclass(frozen=True)
class MediaStatus:
    """The media archive's state: what ``creation_media`` kept, what ``media_not_archived``
    still lists (of which ``failed`` failed their last attempt)."""

    files_archived: int
    bytes_archived: int
    not_archived: int
    failed: int
    last_archived_at: datetime | None


@dataclass(frozen=True)
class StatusReport:
    """What is in a database file, for people."""

    path: str
    version: int
    ids_by_status: list[tuple[str, int]]
    creations: int
    outputs: int
    errors: int
    runs: int
    last_run: RunSummary | None
    pending: int
    oldest_pending: PendingId | None
    now: datetime
    media: MediaStatus | None = None  # None: the file predates the media archive (schema < 7)


# What `haiper-sync demo` (and `make demo`) writes.
DEMO_DB = "haiper-demo.duckdb"


def missing_database_message(path: str | Path) -> str:
    """The hint for a database path with no file behind it."""
    if Path(DEMO_DB).is_file() and Path(path).resolve() != Path(DEMO_DB).resolve():
        return f"no database at {path}; the demo wrote {DEMO_DB}: add --db {DEMO_DB}"
    return f"no database at {path}; run `haiper-sync sync` or `make demo` first"


@contextmanager
def open_readonly(
    path: str | Path, *, timeout: float = DEFAULT_WAIT
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open an existing database read-only, in UTC; never creates a file."""
    if Path(path).is_dir():
        raise AnalystError(f"{path} is a directory, not a DuckDB file")
    if not Path(path).is_file():
        raise AnalystError(missing_database_message(path))
    try:
        con = connect(path, read_only=True, timeout=timeout)
    except duckdb.Error as exc:
        raise AnalystError(f"cannot open {path}: {duckdb_message(exc)}") from None
    try:
        # Readable output that does not depend on the machine's zone.
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def _explain(con: duckdb.DuckDBPyConnection, exc: duckdb.Error) -> str:
    message = duckdb_message(exc)
    if "read-only mode" in message:
        return f"`query` opens the database read-only and cannot change it: {message}"
    if isinstance(exc, duckdb.CatalogException):
        try:
            version = schema_version(con)
        except duckdb.Error:
            return message
        if version < SCHEMA_VERSION:
            return (
                f"{message} (the file is at schema v{version}, this haiper-sync at "
                f"v{SCHEMA_VERSION}: the next `haiper-sync sync` upgrades it)"
            )
    return message


def run_query(con: duckdb.DuckDBPyConnection, sql: str) -> QueryResult:
    """Run the analyst's SQL; DuckDB's complaint becomes an ``AnalystError``."""
    try:
        cursor = con.execute(sql)
        if cursor.description is None:
            return QueryResult([], [])
        columns = [d[0] for d in cursor.description]
        return QueryResult(columns, cursor.fetchall())
    except duckdb.Error as exc:
        raise AnalystError(_explain(con, exc)) from None


def relations(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Every table then every view of the file, as (name, ``table`` | ``view``)."""
    rows = con.execute(
        """
        SELECT table_name, CASE table_type WHEN 'VIEW' THEN 'view' ELSE 'table' END AS kind
        FROM information_schema.tables
        WHERE table_catalog = current_database() AND table_schema = 'main'
        ORDER BY kind, table_name
        """
    ).fetchall()
    return [(str(name), str(kind)) for name, kind in rows]


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def export(
    con: duckdb.DuckDBPyConnection, out_dir: str | Path, fmt: ExportFormat
) -> list[ExportedFile]:
    """Write every table and view to ``out_dir/<name>.<fmt>``; return what was written."""
    if fmt not in EXPORT_OPTIONS:
        raise AnalystError(f"unknown export format {fmt!r} (use parquet or csv)")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AnalystError(f"cannot create {out}: {exc.strerror or exc}") from None
    written: list[ExportedFile] = []
    for name, kind in relations(con):
        target = out / f"{name}.{fmt}"
        try:
            rows = con.execute(
                f"COPY (SELECT * FROM {_quote_identifier(name)}) "
                f"TO {sql_literal(target)} ({EXPORT_OPTIONS[fmt]})"
            ).fetchall()
        except duckdb.Error as exc:
            raise AnalystError(f"cannot export {name} to {target}: {duckdb_message(exc)}") from None
        written.append(ExportedFile(name, kind, target, int(rows[0][0]) if rows else 0))
    return written


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(scalar(con, sql) or 0)


def status_counts(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """IDs per status in ``creation_status``, most common first (NULL as ``(no status yet)``)."""
    rows = con.execute(
        f"""
        SELECT coalesce(status, '{NO_STATUS}') AS status, count(*) AS ids
        FROM creation_status GROUP BY ALL ORDER BY ids DESC, status
        """
    ).fetchall()
    return [(str(s), int(n)) for s, n in rows]


# The schema version that added creation_media and media_not_archived.
MEDIA_SCHEMA = 7


def media_status(con: duckdb.DuckDBPyConnection) -> MediaStatus | None:
    """The media archive's counts; None for a file older than the archive."""
    if schema_version(con) < MEDIA_SCHEMA:
        return None
    archived = con.execute(
        """
        SELECT count(*), coalesce(sum(bytes), 0), max(archived_at) FROM creation_media
        WHERE bytes IS NOT NULL AND sha256 IS NOT NULL
        """
    ).fetchone()
    left = con.execute("SELECT count(*), count(last_error) FROM media_not_archived").fetchone()
    assert archived is not None and left is not None
    return MediaStatus(
        files_archived=int(archived[0]),
        bytes_archived=int(archived[1]),
        not_archived=int(left[0]),
        failed=int(left[1]),
        last_archived_at=archived[2],
    )


def build_status(
    con: duckdb.DuckDBPyConnection, path: str | Path, now: datetime | None = None
) -> StatusReport:
    """Gather the status report; reads tables only, so it also works on an older schema."""
    if schema_version(con) == 0:
        raise AnalystError(
            f"{path} is not a haiper-sync database (no schema_version table); "
            "`haiper-sync query` can still read it"
        )
    runs = records(
        con.execute("SELECT * FROM sync_runs ORDER BY started_at DESC, run_id DESC LIMIT 1")
    )
    oldest = con.execute(
        f"""
        SELECT creation_id, status, first_seen_at, checks FROM creation_status
        WHERE {NOT_TERMINAL} ORDER BY first_seen_at, creation_id LIMIT 1
        """
    ).fetchone()
    return StatusReport(
        path=str(path),
        version=schema_version(con),
        ids_by_status=status_counts(con),
        creations=_count(con, "SELECT count(*) FROM creations"),
        outputs=_count(con, "SELECT count(*) FROM creation_outputs"),
        errors=_count(con, "SELECT count(*) FROM sync_errors"),
        runs=_count(con, "SELECT count(*) FROM sync_runs"),
        last_run=RunSummary.from_row(runs[0]) if runs else None,
        pending=_count(con, f"SELECT count(*) FROM creation_status WHERE {NOT_TERMINAL}"),
        oldest_pending=PendingId(str(oldest[0]), oldest[1], oldest[2], int(oldest[3]))
        if oldest
        else None,
        now=now or datetime.now(UTC),
        media=media_status(con),
    )


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def media_lines(media: MediaStatus) -> list[str]:
    """The status report's media lines."""
    lines = [
        f"media      {media.files_archived:,} files archived "
        f"({media.bytes_archived / 1e6:,.1f} MB, creation_media), "
        f"{media.not_archived:,} not archived yet (media_not_archived)"
    ]
    if media.failed:
        lines.append(f"  failed   {media.failed:,} of those failed their last attempt (last_error)")
    if media.last_archived_at is not None:
        lines.append(f"  last     file archived {_utc(media.last_archived_at)}")
    return lines


def format_status(report: StatusReport) -> str:
    """The status report as plain text."""
    total = sum(n for _, n in report.ids_by_status)
    width = max([len(s) for s, _ in report.ids_by_status] + [len(NO_STATUS)])
    digits = max([len(str(n)) for _, n in report.ids_by_status] + [1])
    lines = [
        f"database   {report.path} (schema v{report.version})",
        f"creations  {report.creations} with details, {report.outputs} outputs",
        f"IDs        {total} known (creation_status)",
    ]
    lines += [f"  {s.ljust(width)}  {n:>{digits}}" for s, n in report.ids_by_status]
    if report.media is not None:
        lines += media_lines(report.media)
    lines.append(f"runs       {report.runs} recorded, {report.errors} rows in sync_errors")
    run = report.last_run
    if run is None:
        lines.append("last run   none yet")
    else:
        started = run.started_at
        since = human_duration((report.now - started).total_seconds())
        lines += ["", f"last run started {_utc(started)} ({since} ago)", run.text()]
        if run.finished_at is None:
            lines.append(f"  (no finish recorded: still running, or stopped for {since})")
    lines.append("")
    oldest = report.oldest_pending
    if oldest is None:
        lines.append("pending    none: every known ID has a final status")
    else:
        age = human_duration((report.now - oldest.first_seen_at).total_seconds())
        lines += [
            f"pending    {report.pending} IDs without a final status",
            f"  oldest   {oldest.creation_id} ({oldest.status or NO_STATUS}), "
            f"first seen {_utc(oldest.first_seen_at)}, {age} ago, checked {oldest.checks}x",
        ]
    return "\n".join(lines)
