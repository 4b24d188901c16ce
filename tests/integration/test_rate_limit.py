"""The client-side rate limiter against a simulator that enforces the same quota with 429s.

The quota window is shrunk from 60 s to 2 s on both sides so several windows pass quickly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorConfig, SimulatorServer, generate_ids
from tests.conftest import SIM_KEY
from tests.support.expected import Expected, table_counts
from tests.support.manifest import Manifest

QUOTA, WINDOW = 40, 2.0


@pytest.fixture
def limited_sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorServer]:
    monkeypatch.setenv("HAIPER_RATE_WINDOW", str(WINDOW))
    config = SimulatorConfig(
        api_keys=frozenset({SIM_KEY}), rate_limit_per_minute=QUOTA, rate_window_seconds=WINDOW
    )
    with SimulatorServer(config) as server:
        yield server


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_server", "api_key_env")
def test_at_the_servers_own_limit_a_run_gets_no_429(
    limited_sim: SimulatorServer, tmp_path: Path, manifest: Manifest
) -> None:
    ids = generate_ids(60, seed=31)
    expected = Expected(ids)
    ids_file = manifest(ids)
    started = time.monotonic()
    summary = sync_creations(
        manifest=str(ids_file),
        db_path=str(tmp_path / "db.duckdb"),
        api_url=limited_sim.url,
        rate_limit=QUOTA,
        concurrency=16,
    )
    elapsed = time.monotonic() - started
    stats = limited_sim.stats.snapshot()
    requests = 60 + len(expected.succeeded)
    assert stats["rate_limited"] == 0 and set(stats["by_status"]) == {"200"}
    assert summary.requests == stats["total"] == requests
    # The limiter really paced the run: the quota allows QUOTA requests per window.
    full_windows = (requests - 1) // QUOTA
    assert elapsed >= full_windows * WINDOW
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    assert table_counts(con)["creations"] == len(expected.succeeded)
    con.close()


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_server", "api_key_env")
def test_over_the_limit_429s_are_waited_out_and_nothing_is_lost(
    limited_sim: SimulatorServer, tmp_path: Path, manifest: Manifest
) -> None:
    ids = generate_ids(30, seed=32)
    expected = Expected(ids)
    ids_file = manifest(ids)
    summary = sync_creations(
        manifest=str(ids_file),
        db_path=str(tmp_path / "db.duckdb"),
        api_url=limited_sim.url,
        rate_limit=100_000,  # the client believes it may go much faster than the server allows
        concurrency=16,
    )
    stats = limited_sim.stats.snapshot()
    assert stats["rate_limited"] > 0
    assert summary.retries >= stats["rate_limited"] - summary.ids_errored
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    statuses = dict(con.execute("SELECT creation_id, status FROM creation_status").fetchall())
    fetched = {r[0] for r in con.execute("SELECT creation_id FROM creations").fetchall()}
    deferred = {
        r[0] for r in con.execute("SELECT creation_id FROM sync_errors WHERE deferred").fetchall()
    }
    con.close()
    # Every ID is synced, or deferred to the next run with a reason: none silently lost.
    for creation_id in ids:
        assert statuses[creation_id] == expected.statuses[creation_id] or creation_id in deferred
    assert set(expected.succeeded) <= fetched | deferred
    assert len(fetched) == summary.ids_fetched
