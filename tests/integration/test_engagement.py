"""Fresh engagement: stale details fetched again, oldest first, likes kept over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorServer, creation_detail, generate_ids
from tests.support.expected import Expected
from tests.support.manifest import Manifest

pytestmark = [pytest.mark.usefixtures("prefect_server", "api_key_env")]


def sql(db: Path, statement: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(db)) as con:
        return con.execute(statement).fetchall()


@pytest.mark.integration
def test_stale_details_are_fetched_again_and_changed_likes_kept(
    sim: SimulatorServer, tmp_path: Path, manifest: Manifest
) -> None:
    ids = generate_ids(60, seed=97)
    succeeded = Expected(ids).succeeded
    ids_file = manifest(ids)
    db = tmp_path / "e.duckdb"
    run: dict[str, Any] = dict(
        manifest=str(ids_file), db_path=str(db), api_url=sim.url, rate_limit=100_000
    )
    sync_creations(**run)
    first = {i: (likes, collects) for i, likes, collects in
             sql(db, "SELECT creation_id, like_count, collects_count FROM creations")}  # fmt: skip

    # A week passes (moved back in the file); the likes move on in the simulator.
    sim.config.engagement_step = 1
    stale = succeeded[:10]
    sql(db, "UPDATE creations SET last_synced_at = last_synced_at - INTERVAL 8 DAY WHERE "
            f"creation_id IN ({', '.join(repr(i) for i in stale)})")  # fmt: skip
    sql(db, "UPDATE creation_status SET next_check_at = NULL")
    sim.stats.reset()
    summary = sync_creations(refresh_older_than="7d", **run)
    by_endpoint = sim.stats.snapshot()["by_endpoint"]
    assert by_endpoint["detail"] == len(stale) == summary.rows_updated

    commits = {i: creation_detail(i, 1)["commits"] for i in stale}
    now = {i: (c["like_count"], c["collects_count"]) for i, c in commits.items()}
    changed = {i for i in stale if now[i] != first[i]}
    assert changed, "some likes should move in a step"
    stored = sql(db, "SELECT creation_id, like_count, collects_count FROM creations")
    assert {i: (likes, collects) for i, likes, collects in stored} == first | now
    history = sql(db, "SELECT creation_id, like_count, collects_count "
                      "FROM creation_engagement_history")  # fmt: skip
    want = [(i, *first[i]) for i in succeeded] + [(i, *now[i]) for i in changed]
    assert sorted(history) == sorted(want)


@pytest.mark.integration
def test_a_budget_reaches_the_stalest_first(
    sim: SimulatorServer, tmp_path: Path, manifest: Manifest
) -> None:
    ids = generate_ids(40, seed=98)
    finished = set(Expected(ids).succeeded) | {
        i for i, s in Expected(ids).statuses.items() if s == "failed"
    }
    ids_file = manifest(i for i in ids if i in finished)
    db = tmp_path / "s.duckdb"
    run: dict[str, Any] = dict(
        manifest=str(ids_file), db_path=str(db), api_url=sim.url, rate_limit=100_000
    )
    sync_creations(**run)
    succeeded = Expected(ids).succeeded
    # Stale in a known order: the last of the manifest is the stalest.
    for age, creation_id in enumerate(succeeded):
        sql(db, f"UPDATE creations SET last_synced_at = now() - INTERVAL {10 + age} DAY "
                f"WHERE creation_id = '{creation_id}'")  # fmt: skip
    sync_creations(refresh_older_than="7d", max_requests=3, **run)
    fresh = "SELECT creation_id FROM creations WHERE last_synced_at > now() - INTERVAL 1 DAY"
    refreshed = {i for (i,) in sql(db, fresh)}
    assert refreshed == set(succeeded[-3:])
