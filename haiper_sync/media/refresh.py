"""The real refresher: one detail request for fresh links, stored like a sync stores it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from haiper_sync.api.client import HaiperClient
from haiper_sync.errors import MediaError
from haiper_sync.media.archive import WRITES, Links, Refresher, links_of
from haiper_sync.rows import CreationRow, OutputRow
from haiper_sync.store.connection import open_database
from haiper_sync.store.runs import add_run_counts
from haiper_sync.store.writes import replace_outputs, upsert_creations
from haiper_sync.summary import RunCounts
from haiper_sync.sync.normalize import normalize_detail


def detail_refresher(
    client: HaiperClient, db_path: str | Path, *, run_id: str, lock_timeout: float = 60.0
) -> Refresher:
    """A refresher that re-fetches a creation's detail through ``client`` (its limiter too).

    The fresh detail replaces the stored creation and outputs, so the file keeps the links the
    archive used; the returned links feed the retried downloads. Each detail stored counts as
    one request of run ``run_id`` in ``sync_runs`` (when there is such a row).
    """

    async def refresh(creation_id: str) -> Links:
        got = await client.get_detail(creation_id)
        detail = got.response.value
        if detail is None:
            raise MediaError(f"{creation_id}: the detail has no value, no fresh links")
        row, outputs = normalize_detail(creation_id, detail, got.raw, datetime.now(UTC), run_id)
        await asyncio.to_thread(_store, Path(db_path), lock_timeout, row, outputs, run_id)
        return links_of(
            row.thumbnail_url, [(o.output_id, o.media_url, o.thumbnail_url) for o in outputs]
        )

    return refresh


def _store(
    db_path: Path, lock_timeout: float, row: CreationRow, outputs: list[OutputRow], run_id: str
) -> None:
    with (
        WRITES,
        open_database(db_path, migrate_schema=False, timeout=lock_timeout) as con,
    ):
        con.execute("BEGIN")
        try:
            upsert_creations(con, [row])
            replace_outputs(con, [row.creation_id], outputs)
            add_run_counts(con, run_id, RunCounts(requests=1))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
