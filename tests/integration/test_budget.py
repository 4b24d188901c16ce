"""A budgeted run on the simulator spends exactly its budget; the next run finishes the job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorServer, generate_ids
from tests.support.manifest import Manifest

# When, by which run, and how often it was asked (and so when it is asked next).
VOLATILE = {"first_synced_at", "last_synced_at", "last_run_id", "first_seen_at",
            "last_checked_at", "occurred_at", "run_id", "checks", "unchanged_checks",
            "next_check_at"}  # fmt: skip


def snapshot(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every data table, minus when and by which run (and how often checked)."""
    out = {}
    with duckdb.connect(str(db), read_only=True) as con:
        for table in ("creations", "creation_outputs", "creation_status"):
            names = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            keep = ", ".join(n for n in names if n not in VOLATILE)
            out[table] = sorted(con.execute(f"SELECT {keep} FROM {table}").fetchall(), key=repr)
    return out


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_server", "api_key_env")
def test_a_budgeted_run_spends_exactly_its_budget_and_the_next_run_finishes_the_job(
    sim: SimulatorServer, tmp_path: Path, manifest: Manifest
) -> None:
    ids_file = manifest(generate_ids(120, seed=81))
    common: dict[str, Any] = dict(
        manifest=str(ids_file), api_url=sim.url, rate_limit=100_000, chunk_size=30
    )

    full = sync_creations(db_path=str(tmp_path / "full.duckdb"), **common)
    unbudgeted = sim.stats.snapshot()["total"]
    sim.stats.reset()

    budgeted = tmp_path / "budgeted.duckdb"
    first = sync_creations(db_path=str(budgeted), max_requests=70, **common)
    assert sim.stats.snapshot()["total"] == first.requests == 70 < unbudgeted
    assert first.state == "completed"
    assert first.message is not None and first.message.startswith("request budget of 70 spent:")
    second = sync_creations(db_path=str(budgeted), **common)
    assert second.state == "completed" and second.message is None
    assert snapshot(budgeted) == snapshot(tmp_path / "full.duckdb")
    assert full.ids_fetched == first.ids_fetched + second.ids_fetched
