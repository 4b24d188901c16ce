"""Composing one chunk's outcomes into rows and committing them in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from haiper_sync import store
from haiper_sync.models import TERMINAL_STATUSES
from haiper_sync.normalize import CreationRow, OutputRow, normalize_detail
from haiper_sync.pipeline import DetailBatch, ErrorRecord, StatusBatch
from haiper_sync.store import StatusRow


@dataclass
class ChunkRows:
    """Everything one chunk writes, ready for `write_chunk`."""

    creations: list[CreationRow] = field(default_factory=list)
    outputs: list[OutputRow] = field(default_factory=list)
    statuses: list[StatusRow] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def assemble_chunk(
    run_id: str, statuses: StatusBatch | None, details: DetailBatch | None
) -> ChunkRows:
    """Turn a chunk's status and detail outcomes into table rows and run counters."""
    rows = ChunkRows()
    status_outcomes = statuses.outcomes if statuses else []
    detail_outcomes = details.outcomes if details else []
    errors = [o.error for o in status_outcomes if o.error] + [
        o.error for o in detail_outcomes if o.error
    ]
    detail_errors = {e.creation_id: e.message for e in errors if e.stage != "status"}
    by_id: dict[str, StatusRow] = {}
    for o in status_outcomes:
        message = o.error.message if o.error else detail_errors.get(o.creation_id)
        by_id[o.creation_id] = StatusRow(o.creation_id, o.status, o.progress, o.checked_at, message)
    for d in detail_outcomes:
        if d.creation_id not in by_id:
            # Detail fetched without a status check (status was already `succeed`).
            error = d.error.message if d.error else None
            by_id[d.creation_id] = StatusRow(d.creation_id, None, None, None, error)
        if d.detail is None or d.raw is None:
            continue
        creation, outputs = normalize_detail(d.creation_id, d.detail, d.raw, d.fetched_at, run_id)
        rows.creations.append(creation)
        rows.outputs.extend(outputs)
    rows.statuses = list(by_id.values())
    rows.errors = errors
    known = [o.status for o in status_outcomes if o.status is not None]
    rows.counts = {
        "ids_checked": len(known),
        "ids_succeeded": sum(s == "succeed" for s in known),
        "ids_failed": sum(s == "failed" for s in known),
        "ids_pending": sum(s not in TERMINAL_STATUSES for s in known),
        "ids_fetched": len(rows.creations),
        "ids_errored": len({e.creation_id for e in errors}),
        "requests": (statuses.requests if statuses else 0) + (details.requests if details else 0),
        "retries": (statuses.retries if statuses else 0) + (details.retries if details else 0),
    }
    return rows


def write_chunk(con: duckdb.DuckDBPyConnection, run_id: str, rows: ChunkRows) -> dict[str, int]:
    """Commit a chunk's creations, outputs, statuses, errors and counters atomically."""
    con.execute("BEGIN")
    try:
        inserted, updated = store.upsert_creations(con, rows.creations)
        store.replace_outputs(con, [c.creation_id for c in rows.creations], rows.outputs)
        store.upsert_statuses(con, rows.statuses, run_id)
        store.insert_errors(con, rows.errors, run_id)
        counts = rows.counts | {"rows_inserted": inserted, "rows_updated": updated}
        store.add_run_counts(con, run_id, counts)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return counts
