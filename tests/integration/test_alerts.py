"""Alerts: each run emits an event with its counts; too many errored IDs fail the run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorServer, generate_ids
from tests.support.manifest import Manifest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server", "api_key_env")]


def events_about(db: Path, name: str) -> list[Any]:
    """The events of that name whose resource is this DuckDB file (read through the API)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    deadline = time.monotonic() + 20
    found: list[Any] = []
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:  # events reach the server in the background
            page = client.read_events(
                filter=EventFilter(event=EventNameFilter(name=[name])), limit=50
            )
            found = [
                e for e in page.events if e.resource.id == f"haiper-sync.database.{db.absolute()}"
            ]
            if found:
                break
            time.sleep(0.5)
    return found


def test_a_run_with_too_many_errors_fails_and_says_so(
    sim: SimulatorServer, tmp_path: Path, manifest: Manifest
) -> None:
    good = generate_ids(10, seed=102)
    ids_file = manifest([*good, *(f"nf-{n}" for n in range(4))])
    db = tmp_path / "alerts.duckdb"
    run: dict[str, Any] = dict(
        manifest=str(ids_file), db_path=str(db), api_url=sim.url, rate_limit=100_000
    )

    state = sync_creations(max_error_ratio=0.2, return_state=True, **run)  # 4 of 14: 29%
    assert state.is_failed()
    # A foreseen failure: the run's state carries the one line (no exception, no traceback).
    assert "4 of 14 IDs errored (29%), more than max_error_ratio 20% allows" in str(state.message)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT state FROM sync_runs").fetchall() == [("failed",)]
        assert con.execute("SELECT count(*) FROM creation_status").fetchall() == [(14,)]
    (failed,) = events_about(db, "haiper-sync.run.failed")
    assert failed.payload["ids_errored"] == 4 and failed.payload["ids_in_manifest"] == 14
    assert "max_error_ratio" in failed.payload["message"]

    summary = sync_creations(max_error_ratio=0.5, refresh=True, **run)  # 4 of 14 is fine
    assert summary.state == "completed"
    completed = events_about(db, "haiper-sync.run.completed")
    assert [e.payload["run_id"] for e in completed] == [summary.run_id]
    assert completed[0].resource.name == "alerts.duckdb"
