"""The same flow on a Dask LocalCluster of two worker processes writes the same database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorServer, generate_ids
from tests.support.expected import Expected, table_counts
from tests.support.manifest import Manifest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server", "api_key_env")]

# Columns that legitimately differ between two runs (when, and which run).
VOLATILE = {"first_synced_at", "last_synced_at", "last_run_id", "first_seen_at",
            "last_checked_at", "occurred_at", "run_id", "next_check_at",
            "not_found_since"}  # fmt: skip


def snapshot(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every data table, minus the volatile columns, sorted."""
    con = duckdb.connect(str(db), read_only=True)
    out = {}
    for table in ("creations", "creation_outputs", "creation_status", "sync_errors"):
        names = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        keep = [n for n in names if n not in VOLATILE]
        out[table] = sorted(
            con.execute(f"SELECT {', '.join(keep)} FROM {table}").fetchall(), key=repr
        )
    table_counts(con)
    con.close()
    return out


def test_dask_local_cluster_gives_the_same_database(
    sim: SimulatorServer, tmp_path: Path, manifest: Manifest
) -> None:
    from prefect_dask.task_runners import DaskTaskRunner

    ids = [*generate_ids(120, seed=21), "nf-dask-1"]
    ids_file = manifest(ids)
    params: dict[str, Any] = dict(
        manifest=str(ids_file), api_url=sim.url, chunk_size=25, rate_limit=100_000
    )

    sync_creations(db_path=str(tmp_path / "threads.duckdb"), **params)
    threads_requests = sim.stats.snapshot()["total"]
    sim.stats.reset()
    runner = DaskTaskRunner(
        cluster_kwargs={
            "n_workers": 2,
            "threads_per_worker": 2,
            "processes": True,
            "dashboard_address": None,
        }
    )
    summary = sync_creations.with_options(task_runner=runner)(  # type: ignore[arg-type]
        db_path=str(tmp_path / "dask.duckdb"), **params
    )

    expected = Expected(ids[:-1])
    assert summary.ids_fetched == len(expected.succeeded)
    assert sim.stats.snapshot()["total"] == threads_requests == 121 + len(expected.succeeded)
    assert snapshot(tmp_path / "dask.duckdb") == snapshot(tmp_path / "threads.duckdb")
