"""Planning a run: validate, dedupe and subtract what is already finished, inside DuckDB.

The manifest's entries are staged to Parquet (see `manifest`) and the to-do list goes to a
Parquet file read back a chunk at a time, so memory follows the chunk size, not the manifest
size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

import duckdb
import pyarrow.parquet as pq

from haiper_sync.api.ids import ID_PATTERN, MAX_ID_LENGTH
from haiper_sync.errors import ConfigError, ManifestError
from haiper_sync.settings import ManifestFormat
from haiper_sync.statuses import FAILED, NOT_FOUND, SUCCEEDED
from haiper_sync.store import writes
from haiper_sync.store.sql import scalar, sql_literal
from haiper_sync.summary import RunCounts
from haiper_sync.sync.manifest import entry_places, manifest_files, stage_lines

# DuckDB's memory while it plans: bounds the planner's memory, whatever the manifest's size.
_PLAN_MEMORY = "128MB"


@dataclass(frozen=True)
class Plan:
    """What a run will do: counts, and the to-do list on disk."""

    ids_in_manifest: int  # distinct valid IDs
    ids_rejected: int
    ids_skipped: int  # already finished in the database
    todo: int
    todo_path: Path
    first_rejected: str | None = None  # why the first rejected entry was rejected
    ids_not_due: int = 0  # asked recently with no change: their next check is not due yet

    def check_not_empty(self, manifest: str) -> None:
        """Raise `ManifestError` when the manifest holds no valid creation ID at all.

        A run that could sync nothing is a mistake (an empty file, a multi-column CSV, a JSON
        list), not a success.
        """
        if self.ids_in_manifest:
            return
        if not self.ids_rejected:
            raise ManifestError(f"manifest {manifest}: no creation ID in it (empty, or comments)")
        raise ManifestError(
            f"manifest {manifest}: no valid creation ID among {self.ids_rejected} entries, "
            f"e.g. {self.first_rejected}; a manifest holds one creation ID per line"
        )

    def counts(self) -> RunCounts:
        """The plan's share of the run's counters (``sync_runs`` columns)."""
        return RunCounts(
            ids_in_manifest=self.ids_in_manifest,
            ids_rejected=self.ids_rejected,
            ids_skipped=self.ids_skipped,
            ids_not_due=self.ids_not_due,
        )


@dataclass(frozen=True)
class TodoFilter:
    """Which IDs of the manifest a run does, as SQL predicates over ``s`` (``creation_status``)
    and ``c`` (``creations``). None: the clause does not apply."""

    # An ID needs a status check (None: every ID does). Else only its detail is missing.
    needs_status: str | None
    # Nothing left to do for this ID (None: every ID has something to do).
    finished: str | None
    # Asked recently with no change: its next check is not due (None: every ID is due).
    not_due: str | None
    # Succeeded, but its detail is older than the refresh age: fetched again, after the rest
    # and oldest first (None: no detail is refreshed for its age).
    stale: str | None


def todo_filter(
    refresh: bool, recheck_all: bool = False, refresh_older_than: timedelta | None = None
) -> TodoFilter:
    """The to-do list's clauses for a run's options (see `plan_run`)."""
    if refresh:
        return TodoFilter(needs_status=None, finished=None, not_due=None, stale=None)
    # Finished: failed, given up on (not_found: unless told to recheck all), or succeeded with
    # its detail stored (else only the detail is missing).
    given_up = "" if recheck_all else f", '{NOT_FOUND}'"
    finished = (
        f"s.status IN ('{FAILED}'{given_up}) "
        f"OR (s.status = '{SUCCEEDED}' AND c.creation_id IS NOT NULL)"
    )
    stale = None
    if refresh_older_than is not None:
        seconds = int(refresh_older_than.total_seconds())
        stale = (
            f"s.status = '{SUCCEEDED}' AND c.creation_id IS NOT NULL "
            f"AND c.last_synced_at < now() - to_seconds({seconds})"
        )
        finished = f"({finished}) AND NOT ({stale})"
    return TodoFilter(
        needs_status=f"s.status IS DISTINCT FROM '{SUCCEEDED}'",
        finished=finished,
        not_due=None if recheck_all else "s.next_check_at > now()",
        stale=stale,
    )


def _not(predicate: str | None) -> str:
    """SQL: ``predicate`` does not hold (NULL counts as not holding); TRUE when it is None."""
    return "TRUE" if predicate is None else f"NOT coalesce({predicate}, FALSE)"


def _order(stale: str | None) -> str:
    """SQL ORDER BY terms: manifest order, stale details last and oldest first."""
    if stale is None:
        return "m.seq"
    return (
        f"coalesce({stale}, FALSE), "
        f"CASE WHEN coalesce({stale}, FALSE) THEN epoch(c.last_synced_at) ELSE m.seq END"
    )


def plan_run(
    con: duckdb.DuckDBPyConnection,
    manifest: str,
    *,
    run_id: str,
    refresh: bool,
    todo_path: Path,
    chunk_size: int,
    manifest_format: ManifestFormat = "auto",
    recheck_all: bool = False,
    refresh_older_than: timedelta | None = None,
) -> Plan:
    """Load the manifest, record its rejects, and write the to-do list.

    The to-do Parquet file has ``creation_id``, ``needs_status`` (False when the status is
    already ``succeed`` and only the detail is missing: one request instead of two) and
    ``never_seen`` (no status known yet: a detail-first run asks for its detail directly).
    An ID whose next check is not due yet (see `statuses.BACKOFF_FIRST_HOURS`) is left out
    and counted, unless ``recheck_all`` (or ``refresh``). With ``refresh_older_than``, the
    details of succeeded creations last synced before that age are fetched again, after the
    rest and oldest first (so a request budget reaches the stalest first).
    """
    files = manifest_files(manifest, manifest_format)
    todo_path.parent.mkdir(parents=True, exist_ok=True)
    staged = todo_path.with_name("manifest-lines.parquet")
    stage_lines(con, files, staged, manifest_format)
    places = entry_places(files, manifest_format)
    lines = f"read_parquet({sql_literal(staged)})"
    valid = f"regexp_full_match(raw, '{ID_PATTERN}')"
    keep = todo_filter(refresh, recheck_all, refresh_older_than)
    # Planning only reads the tables (an ID gets its creation_status row when its chunk is
    # written). Under a memory cap DuckDB's aggregate and joins spill to disk instead of
    # holding a million-ID manifest and table at once.
    limit = scalar(con, "SELECT current_setting('memory_limit')")
    con.execute(f"SET memory_limit = '{_PLAN_MEMORY}'")
    con.execute("BEGIN")
    try:
        rejected = writes.insert_manifest_rejects(
            con,
            run_id=run_id,
            entries=f"(SELECT * FROM {lines} WHERE NOT {valid})",
            places=places,
            reason=f"""CASE WHEN length(raw) > {MAX_ID_LENGTH}
                            THEN 'longer than {MAX_ID_LENGTH} characters'
                            ELSE 'not a creation ID (allowed: A-Z a-z 0-9 - _)' END""",
        )
        first = None
        if rejected:
            raw, line_no, file_no = con.execute(
                f"SELECT raw, line_no, file_no FROM {lines} WHERE NOT {valid} ORDER BY seq LIMIT 1"
            ).fetchall()[0]
            first = f"{places[file_no].rsplit(' ', 1)[1]} {line_no}: {raw[:80]!r}"
        total = int(scalar(con, f"SELECT count(DISTINCT raw) FROM {lines} WHERE {valid}"))
        manifest_ids = f"(SELECT DISTINCT raw AS creation_id FROM {lines} WHERE {valid})"
        not_due_count = 0
        if keep.not_due is not None:
            not_due_count = int(
                scalar(
                    con,
                    f"""
                    SELECT count(*) FROM {manifest_ids} AS m
                    JOIN creation_status AS s USING (creation_id)
                    LEFT JOIN creations AS c USING (creation_id)
                    WHERE {_not(keep.finished)} AND {keep.not_due}
                    """,
                )
            )
        con.execute(
            f"""
            COPY (
                WITH manifest AS (
                    SELECT raw AS creation_id, min(seq) AS seq FROM {lines} WHERE {valid}
                    GROUP BY raw
                )
                SELECT m.creation_id, {keep.needs_status or "TRUE"} AS needs_status,
                       s.creation_id IS NULL AS never_seen
                FROM manifest AS m
                LEFT JOIN creation_status AS s USING (creation_id)
                LEFT JOIN creations AS c USING (creation_id)
                WHERE {_not(keep.finished)} AND {_not(keep.not_due)}
                ORDER BY {_order(keep.stale)}
            ) TO {sql_literal(todo_path)} (FORMAT parquet, ROW_GROUP_SIZE {max(chunk_size, 2048)})
            """
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute(f"SET memory_limit = '{limit}'")
        staged.unlink(missing_ok=True)
    todo = pq.ParquetFile(todo_path).metadata.num_rows
    skipped = total - todo - not_due_count
    return Plan(total, rejected, skipped, todo, todo_path, first, not_due_count)


class Chunk(NamedTuple):
    """A chunk of the to-do list, by the first request each ID needs.

    ``to_check``: a status check. ``known_succeeded``: already ``succeed`` with its detail
    missing: the detail (one request instead of two). ``detail_first``: never seen, in a
    detail-first run: the detail directly (a finished one then costs one request).
    """

    to_check: list[str]
    known_succeeded: list[str]
    detail_first: list[str]


def iter_chunks(todo_path: Path, chunk_size: int, *, detail_first: bool = False) -> Iterator[Chunk]:
    """Read the to-do list back ``chunk_size`` IDs at a time."""
    parquet = pq.ParquetFile(todo_path)
    for batch in parquet.iter_batches(batch_size=chunk_size):
        ids = batch.column("creation_id").to_pylist()
        needs = batch.column("needs_status").to_pylist()
        unseen = batch.column("never_seen").to_pylist()
        chunk = Chunk([], [], [])
        for creation_id, needs_status, never_seen in zip(ids, needs, unseen, strict=True):
            if detail_first and never_seen:
                chunk.detail_first.append(creation_id)
            elif needs_status:
                chunk.to_check.append(creation_id)
            else:
                chunk.known_succeeded.append(creation_id)
        yield chunk


# A chunk's task runs cost ~0.1 s of CPU in Prefect (client and server); a chunk is also the
# unit of commit. So: about 30 s of requests at the rate limit (2 per ID), within these bounds.
MIN_AUTO_CHUNK = 250
MAX_AUTO_CHUNK = 1_000


def auto_chunk_size(rate_limit: int) -> int:
    """IDs per chunk for a run limited to ``rate_limit`` requests a minute."""
    return min(MAX_AUTO_CHUNK, max(MIN_AUTO_CHUNK, rate_limit // 4))


def chunk_size_for(todo: int, chunk_size: int, max_chunks: int) -> int:
    """Grow chunks so a run never has more than ``max_chunks`` of them."""
    return max(chunk_size, -(-todo // max_chunks)) if todo else chunk_size


_AGE = re.compile(r"(\d+)\s*([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``90s`` → a timedelta; `ConfigError` for anything else."""
    match = _AGE.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(f"not an age: {text!r} (expected e.g. 7d, 12h, 30m)")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
