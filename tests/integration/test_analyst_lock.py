"""An analyst's session holding the DuckDB file mid-sync: the sync neither fails nor loses rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorConfig, SimulatorServer, generate_ids
from haiper_sync.store.set_aside import set_aside_waiting
from tests.conftest import SIM_KEY
from tests.support.expected import Expected, table_counts
from tests.support.manifest import Manifest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server", "api_key_env")]

# Waits until the sync has committed a chunk, then keeps a read-only session open for a while,
# as an analyst with `duckdb -readonly haiper.duckdb` would.
HOLDER = """
import sys, time, duckdb
path, hold = sys.argv[1], float(sys.argv[2])
ready = sys.argv[3] if len(sys.argv) > 3 else (
    "SELECT coalesce(sum(ids_checked), 0) FROM sync_runs WHERE state = 'running'"
)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        con = duckdb.connect(path, read_only=True)
    except Exception:
        time.sleep(0.01)
        continue
    try:
        written = con.execute(ready).fetchall()[0][0]
    except Exception:
        written = 0
    if written:
        print("holding", flush=True)
        time.sleep(hold)
        con.close()
        print("released", flush=True)
        sys.exit(0)
    con.close()
    time.sleep(0.01)
sys.exit("the sync never wrote a chunk")
"""


def test_a_held_file_sets_chunks_aside_and_they_land_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manifest: Manifest
) -> None:
    monkeypatch.setenv("HAIPER_LOCK_TIMEOUT", "0.5")
    ids = generate_ids(200, seed=51)
    expected = Expected(ids)
    ids_file = manifest(ids)
    db = tmp_path / "held.duckdb"
    config = SimulatorConfig(api_keys=frozenset({SIM_KEY}), latency_ms=30)
    with SimulatorServer(config) as sim:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db), "2.0"], stdout=subprocess.PIPE, text=True
        )
        try:
            summary = sync_creations(
                manifest=str(ids_file),
                db_path=str(db),
                api_url=sim.url,
                chunk_size=20,
                concurrency=4,
                rate_limit=100_000,
            )
            out, _ = holder.communicate(timeout=60)
        finally:
            holder.kill()
    assert out.split() == ["holding", "released"]
    assert summary.state == "completed"
    assert summary.chunks_set_aside >= 1
    assert set_aside_waiting(db) == []
    con = duckdb.connect(str(db), read_only=True)
    counts = table_counts(con)
    statuses = dict(con.execute("SELECT creation_id, status FROM creation_status").fetchall())
    run = con.execute("SELECT state, ids_checked, ids_fetched FROM sync_runs").fetchall()
    con.close()
    assert counts["creations"] == len(expected.succeeded)
    assert counts["creation_outputs"] == expected.output_count()
    assert statuses == expected.statuses
    assert run == [("completed", 200, len(expected.succeeded))]


def test_a_file_held_at_the_runs_end_is_a_completed_run_with_its_end_set_aside(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    manifest: Manifest,
) -> None:
    from cli.main import main

    monkeypatch.setenv("HAIPER_LOCK_TIMEOUT", "0.5")
    ids = generate_ids(8, seed=52)
    ids_file = manifest(ids)
    db = tmp_path / "held-end.duckdb"
    # Each request takes a second: the analyst gets in once the run has started, and holds the
    # file past the chunk's write and the run's end.
    config = SimulatorConfig(api_keys=frozenset({SIM_KEY}), latency_ms=1000)
    started = "SELECT count(*) FROM sync_runs WHERE state = 'running'"
    with SimulatorServer(config) as sim:
        options = ["--api-url", sim.url, "--rate-limit", "100000", "--chunk-size", "20"]
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db), "6.0", started],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            code = main(["sync", "--manifest", str(ids_file), "--db", str(db), *options])
            out, _ = holder.communicate(timeout=60)
        finally:
            holder.kill()
        assert out.split() == ["holding", "released"]
        printed = capsys.readouterr().out
        assert code == 0
        assert "completed" in printed and f"manifest  {ids_file}: 8 IDs" in printed
        assert "1 chunk(s), the run's end" in printed
        assert len(set_aside_waiting(db)) == 2
        # The next run writes both before it plans: the first run's row ends completed.
        assert main(["sync", "--manifest", str(ids_file), "--db", str(db), *options]) == 0
    con = duckdb.connect(str(db), read_only=True)
    first = con.execute("SELECT state, ids_checked FROM sync_runs ORDER BY started_at").fetchall()
    con.close()
    assert first[0] == ("completed", 8)
    assert set_aside_waiting(db) == []
