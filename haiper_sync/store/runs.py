"""The ``sync_runs`` table: a row per run, its counters, its end."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb

from haiper_sync.store.sql import records, scalar
from haiper_sync.summary import RunCounts, RunSummary


def start_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    *,
    manifest: str,
    refresh: bool,
    flow_run_id: str | None = None,
    started_at: datetime | None = None,
) -> None:
    """Open a ``sync_runs`` row in state ``running``."""
    con.execute(
        "INSERT INTO sync_runs (run_id, flow_run_id, started_at, state, manifest, refresh) "
        "VALUES (?, ?, ?, 'running', ?, ?)",
        [run_id, flow_run_id, started_at or datetime.now(UTC), manifest, refresh],
    )


def ensure_run(con: duckdb.DuckDBPyConnection, run_id: str, **start: Any) -> bool:
    """`start_run` unless the run has its row (it failed before it got one); True if new."""
    if scalar(con, "SELECT count(*) FROM sync_runs WHERE run_id = ?", [run_id]):
        return False
    start_run(con, run_id, **start)
    return True


def abandon_stale_runs(con: duckdb.DuckDBPyConnection) -> int:
    """Mark runs still ``running`` as ``abandoned``; call only while holding the sync lock.

    Holding the lock proves no other sync is alive, so such a row belongs to a killed process.
    """
    stale = int(scalar(con, "SELECT count(*) FROM sync_runs WHERE state = 'running'"))
    if stale:
        con.execute(
            "UPDATE sync_runs SET state = 'abandoned', finished_at = now(), "
            "message = 'the process ended before the run finished; its chunks that committed "
            "are kept' WHERE state = 'running'"
        )
    return stale


def add_run_counts(con: duckdb.DuckDBPyConnection, run_id: str, counts: RunCounts) -> None:
    """Add ``counts`` to the run's counters (called inside each chunk's transaction)."""
    nonzero = {name: value for name, value in counts.counts().items() if value}
    if not nonzero:
        return
    sets = ", ".join(f"{name} = {name} + ?" for name in nonzero)
    con.execute(f"UPDATE sync_runs SET {sets} WHERE run_id = ?", [*nonzero.values(), run_id])


def finish_run(
    con: duckdb.DuckDBPyConnection, run_id: str, *, state: str, message: str | None = None
) -> None:
    """Close the run's row with its final state (`summary.RUN_ENDS`)."""
    con.execute(
        "UPDATE sync_runs SET state = ?, finished_at = ?, message = ? WHERE run_id = ?",
        [state, datetime.now(UTC), message, run_id],
    )


def fetch_run(con: duckdb.DuckDBPyConnection, run_id: str) -> RunSummary:
    """The run's ``sync_runs`` row."""
    rows = records(con.execute("SELECT * FROM sync_runs WHERE run_id = ?", [run_id]))
    if not rows:
        raise KeyError(run_id)
    return RunSummary.from_row(rows[0])


def error_sample(
    con: duckdb.DuckDBPyConnection, run_id: str, limit: int = 5
) -> list[dict[str, Any]]:
    """A few of the run's ``sync_errors`` rows (stage, ID, HTTP status, message)."""
    return records(
        con.execute(
            "SELECT stage, creation_id, http_status, message FROM sync_errors WHERE run_id = ? "
            "ORDER BY stage, creation_id LIMIT ?",
            [run_id, limit],
        )
    )


def error_answers(
    con: duckdb.DuckDBPyConnection, run_id: str, limit: int = 50
) -> list[dict[str, Any]]:
    """The run's ``sync_errors`` grouped by answer, most frequent first, with the run's totals.

    Each row: ``http_status``, ``raw_body``, ``deferred``, ``message`` (one of the group's),
    ``count``; and on every row ``errors`` (all of the run's error rows, so a caller can tell
    whether ``limit`` cut groups off) and ``answered`` (the IDs whose status check this run
    got a usable answer for).
    """
    return records(
        con.execute(
            """
            SELECT http_status, raw_body, deferred, min(message) AS message, count(*) AS count,
                   sum(count(*)) OVER () AS errors,
                   (SELECT count(*) FROM creation_status
                    WHERE last_run_id = $1 AND last_error IS NULL) AS answered
            FROM sync_errors WHERE run_id = $1
            GROUP BY http_status, raw_body, deferred
            ORDER BY count DESC, http_status, raw_body
            LIMIT $2
            """,
            [run_id, limit],
        )
    )
