"""Detail-first backfills: a finished creation costs one request, an unfinished one falls back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorConfig, SimulatorServer, generate_ids
from tests.conftest import SIM_KEY
from tests.support.expected import Expected
from tests.support.manifest import Manifest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server", "api_key_env")]


def rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """What was learned: creations and outputs (minus when, which run), and each ID's status."""
    with duckdb.connect(str(db), read_only=True) as con:
        names = [r[0] for r in con.execute("DESCRIBE creations").fetchall()]
        keep = ", ".join(n for n in names if not n.endswith(("synced_at", "run_id")))
        return {
            "creations": sorted(con.execute(f"SELECT {keep} FROM creations").fetchall()),
            "outputs": sorted(con.execute("SELECT * FROM creation_outputs").fetchall()),
            "status": sorted(
                con.execute("SELECT creation_id, status FROM creation_status").fetchall(),
                key=repr,
            ),
        }


@pytest.mark.parametrize("unfinished_detail", ["400", "200"])
def test_detail_first_spends_exactly_what_it_should_and_learns_the_same(
    unfinished_detail: str, tmp_path: Path, manifest: Manifest
) -> None:
    ids = generate_ids(150, seed=91)
    expected = Expected(ids)
    ids_file = manifest([*ids, "nf-never-1"])
    config = SimulatorConfig(api_keys=frozenset({SIM_KEY}), unfinished_detail=unfinished_detail)
    with SimulatorServer(config) as sim:
        common: dict[str, Any] = dict(manifest=str(ids_file), api_url=sim.url, rate_limit=100_000)
        status_first = sync_creations(db_path=str(tmp_path / "status.duckdb"), **common)
        spent_status_first = sim.stats.snapshot()["total"]
        sim.stats.reset()
        detail_first = sync_creations(
            db_path=str(tmp_path / "detail.duckdb"), strategy="detail-first", **common
        )
        spent = sim.stats.snapshot()["total"]

    finished = len(expected.succeeded)
    others = len(ids) - finished
    assert spent_status_first == len(ids) + 1 + finished
    # A finished creation: its detail only. Not finished: a 400 then the status check (2), or
    # a 200 that says its status (1). The unknown ID: one 404, on the detail.
    assert spent == finished + others * (2 if unfinished_detail == "400" else 1) + 1
    assert detail_first.requests == spent and detail_first.ids_fetched == finished
    before, after = rows(tmp_path / "status.duckdb"), rows(tmp_path / "detail.duckdb")
    assert after["creations"] == before["creations"] and after["outputs"] == before["outputs"]
    assert after["status"] == before["status"]
    assert status_first.ids_errored == detail_first.ids_errored == 1


def test_detail_first_asks_the_status_of_ids_seen_before(
    tmp_path: Path, manifest: Manifest
) -> None:
    ids = generate_ids(60, seed=92)
    ids_file = manifest(ids)
    db = tmp_path / "h.duckdb"
    with SimulatorServer(SimulatorConfig(api_keys=frozenset({SIM_KEY}))) as sim:
        common: dict[str, Any] = dict(
            manifest=str(ids_file), db_path=str(db), api_url=sim.url, rate_limit=100_000
        )
        sync_creations(**common)
        unfinished = Expected(ids).unfinished
        sim.stats.reset()
        sync_creations(strategy="detail-first", **common)
        by_endpoint = sim.stats.snapshot()["by_endpoint"]
    # Only the unfinished are due again, and they are known: a status check each, no detail.
    assert (by_endpoint["status"], by_endpoint.get("detail", 0)) == (len(unfinished), 0)
