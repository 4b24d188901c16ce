"""Back-off and give-up across runs: unchanged IDs wait longer each time, 404s end as not_found."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorServer, generate_ids
from haiper_sync.summary import RunSummary
from tests.support.expected import Expected
from tests.support.manifest import Manifest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server", "api_key_env")]


def sql(db: Path, statement: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(db)) as con:
        return con.execute(statement).fetchall()


def test_unchanged_ids_back_off_and_repeated_404s_are_given_up(
    sim: SimulatorServer, tmp_path: Path, manifest: Manifest
) -> None:
    ids = generate_ids(60, seed=95)
    unfinished = set(Expected(ids).unfinished)
    ids_file = manifest([*ids, "nf-gone-1"])
    db = tmp_path / "b.duckdb"
    run: dict[str, Any] = dict(
        manifest=str(ids_file), db_path=str(db), api_url=sim.url, rate_limit=100_000
    )

    def spent(**extra: Any) -> tuple[int, RunSummary]:
        sim.stats.reset()
        summary = sync_creations(**run, **extra)
        return sim.stats.snapshot()["total"], summary

    spent()  # first sight: every unfinished ID (and the 404) is due again next run
    requests, _ = spent()  # the same answers again: 20 h back-off for each
    assert requests == len(unfinished) + 1
    waits = sql(db, "SELECT DISTINCT next_check_at - last_checked_at FROM creation_status "
                    "WHERE next_check_at IS NOT NULL")  # fmt: skip
    assert waits == [(timedelta(hours=20),)]

    requests, summary = spent()  # nothing is due: not a single request
    assert requests == 0 and summary.ids_not_due == len(unfinished) + 1
    assert f"{len(unfinished) + 1} not due yet" in summary.text()

    requests, _ = spent(recheck_all=True)  # told to: asked anyway, and the wait doubles
    assert requests == len(unfinished) + 1
    waits = sql(db, "SELECT DISTINCT next_check_at - last_checked_at FROM creation_status "
                    "WHERE next_check_at IS NOT NULL")  # fmt: skip
    assert waits == [(timedelta(hours=40),)]

    # A week of 404s later (time moved back in the file), the next 404 gives the ID up.
    sql(db, "UPDATE creation_status SET next_check_at = next_check_at - INTERVAL 3 DAY, "
            "not_found_since = not_found_since - INTERVAL 8 DAY")  # fmt: skip
    requests, _ = spent()
    assert requests == len(unfinished) + 1
    assert sql(db, "SELECT status FROM creation_status WHERE creation_id = 'nf-gone-1'") == [
        ("not_found",)
    ]
    sql(db, "UPDATE creation_status SET next_check_at = NULL")
    requests, summary = spent()  # everything due again, but not the ID given up on
    assert requests == len(unfinished) and summary.ids_skipped == len(ids) - len(unfinished) + 1
    pending = {i for (i,) in sql(db, "SELECT creation_id FROM pending_creations")}
    assert pending == unfinished
