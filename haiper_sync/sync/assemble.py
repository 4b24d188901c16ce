"""Composing one chunk's outcomes into the rows it writes and the run counters it adds."""

from __future__ import annotations

from haiper_sync.rows import ChunkRows, StatusRow
from haiper_sync.statuses import FAILED, SUCCEEDED, TERMINAL_STATUSES
from haiper_sync.summary import RunCounts
from haiper_sync.sync.fetch import DetailBatch, StatusBatch
from haiper_sync.sync.normalize import normalize_detail


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
        not_found = o.error is not None and o.error.http_status == 404
        by_id[o.creation_id] = StatusRow(
            o.creation_id, o.status, o.progress, o.checked_at, message, not_found
        )
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
    rows.counts = RunCounts(
        ids_checked=len(known),
        ids_succeeded=sum(s == SUCCEEDED for s in known),
        ids_failed=sum(s == FAILED for s in known),
        ids_pending=sum(s not in TERMINAL_STATUSES for s in known),
        ids_fetched=len(rows.creations),
        ids_errored=len({e.creation_id for e in errors}),
        requests=(statuses.requests if statuses else 0) + (details.requests if details else 0),
        retries=(statuses.retries if statuses else 0) + (details.retries if details else 0),
    )
    return rows
