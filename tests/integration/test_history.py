"""Status history: one row each time a check sees a creation's status or progress change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorServer, creation_status, generate_ids
from tests.support.manifest import Manifest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server", "api_key_env")]


def test_history_rows_follow_the_changes_and_timings_add_up(
    sim: SimulatorServer, tmp_path: Path, manifest: Manifest
) -> None:
    ids = generate_ids(80, seed=93)
    ids_file = manifest(ids)
    db = tmp_path / "h.duckdb"
    run: dict[str, Any] = dict(
        manifest=str(ids_file), db_path=str(db), api_url=sim.url, rate_limit=100_000
    )

    def seen(epoch: int) -> dict[str, tuple[str, float | None]]:
        return {
            i: (s["status"], s.get("progress")) for i in ids if (s := creation_status(i, epoch))
        }

    sync_creations(**run)
    sync_creations(**run)  # nothing changed: no new history
    sim.set_epoch(1)
    sync_creations(recheck_all=True, **run)  # the unchanged ones wait 20 h unless told
    at0, at1 = seen(0), seen(1)
    unfinished0 = {i for i, (s, _) in at0.items() if s not in ("succeed", "failed")}
    changed = {i for i in unfinished0 if at1[i] != at0[i]}
    assert changed, "the simulator should move some creations at epoch 1"

    with duckdb.connect(str(db), read_only=True) as con:
        history = con.execute(
            "SELECT creation_id, status, progress FROM creation_status_history "
            "ORDER BY creation_id, observed_at"
        ).fetchall()
        timings = dict(
            con.execute("SELECT creation_id, observations FROM creation_timings").fetchall()
        )
    expected = sorted([(i, *at0[i]) for i in ids] + [(i, *at1[i]) for i in changed])
    assert sorted(history) == expected
    assert timings == {i: 2 if i in changed else 1 for i in ids}
