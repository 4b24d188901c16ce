"""Chaos and canary: random faults, a SIGKILL part way, a resume; and a token that never leaks.

The killed run is a real ``haiper-sync sync`` process; the resumed one must end with exactly the
rows of a fault-free run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorConfig, SimulatorServer, generate_ids
from tests.support.dead_port import dead_port
from tests.support.expected import Expected, table_counts
from tests.support.manifest import Manifest
from tests.support.paths import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.usefixtures("prefect_server")]

CANARY = "CANARY-sk-7f3e9b21c0d4-do-not-leak"
# Columns that differ between any two runs (when, which run, how often asked).
# When, by which run, how often asked (and so when to ask next): a resumed run asks again.
VOLATILE = {"first_synced_at", "last_synced_at", "last_run_id", "first_seen_at",
            "last_checked_at", "checks", "last_error", "unchanged_checks", "next_check_at",
            "not_found_since"}  # fmt: skip
N_IDS = 300


def chaos_config(keys: frozenset[str], seed: int) -> SimulatorConfig:
    return SimulatorConfig(
        api_keys=keys,
        latency_ms=2,
        fault_seed=seed,
        p_429=0.03,
        p_500=0.03,
        p_reset=0.02,
        p_truncated=0.02,
        p_slow=0.02,
        slow_seconds=0.2,
    )


def rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    con = duckdb.connect(str(db), read_only=True)
    table_counts(con)  # asserts count(*) = count(distinct key) everywhere
    out = {}
    for table in ("creations", "creation_outputs", "creation_status"):
        names = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        keep = ", ".join(n for n in names if n not in VOLATILE)
        out[table] = sorted(con.execute(f"SELECT {keep} FROM {table}").fetchall(), key=repr)
    con.close()
    return out


@pytest.fixture
def prefect_api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the Prefect test server should be running"
    return str(url)


def run_and_kill(
    sim: SimulatorServer, manifest: Path, db: Path, api_url: str, kill_after: int, log: Path
) -> int:
    """Run ``haiper-sync sync`` in a child process and SIGKILL it after ``kill_after`` requests."""
    env = os.environ | {"PREFECT_API_URL": api_url, "HAIPER_API_KEY": CANARY}
    cmd = [sys.executable, "-m", "cli.main", "sync", "--manifest", str(manifest),
           "--db", str(db), "--api-url", sim.url, "--rate-limit", "100000",
           "--chunk-size", "30"]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while sim.stats.snapshot()["total"] < kill_after and proc.poll() is None:
            assert time.monotonic() < deadline, "the child sync made no progress"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        return proc.wait()


@pytest.fixture
def canary_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HAIPER_API_KEY", CANARY)
    yield


@pytest.mark.usefixtures("canary_env")
def test_sigkill_then_resume_ends_exactly_like_a_fault_free_run_and_the_token_never_leaks(
    tmp_path: Path,
    prefect_api_url: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    manifest: Manifest,
) -> None:
    ids = generate_ids(N_IDS, seed=41)
    expected = Expected(ids)
    ids_file = manifest([*ids, "nf-chaos-gone"])
    keys = frozenset({CANARY})

    with SimulatorServer(SimulatorConfig(api_keys=keys)) as clean:
        sync_creations(
            manifest=str(ids_file), db_path=str(tmp_path / "ref.duckdb"), api_url=clean.url,
            rate_limit=100_000, chunk_size=30,
        )  # fmt: skip

    db = tmp_path / "chaos.duckdb"
    total = N_IDS + 1 + len(expected.succeeded)
    kill_after = random.Random(7).randint(total // 4, total // 2)
    with SimulatorServer(chaos_config(keys, seed=99)) as sim:
        code = run_and_kill(sim, ids_file, db, prefect_api_url, kill_after, tmp_path / "child.log")
        assert code == -signal.SIGKILL
        con = duckdb.connect(str(db), read_only=True)
        killed = con.execute("SELECT state FROM sync_runs").fetchall()
        con.close()
        assert killed == [("running",)]  # it died mid-run, leaving its run open
        summary = sync_creations(
            manifest=str(ids_file), db_path=str(db), api_url=sim.url, rate_limit=100_000,
            chunk_size=30,
        )  # fmt: skip
        faults = sim.stats.snapshot()
    assert faults["rate_limited"] + faults["connection_resets"] > 0
    assert summary.state == "completed"
    if summary.ids_errored > 1:  # a rare retry budget exhausted: the next run finishes it
        with SimulatorServer(chaos_config(keys, seed=100)) as sim:
            sync_creations(
                manifest=str(ids_file), db_path=str(db), api_url=sim.url, rate_limit=100_000
            )

    assert rows(db) == rows(tmp_path / "ref.duckdb")
    con = duckdb.connect(str(db), read_only=True)
    states = [
        r[0] for r in con.execute("SELECT state FROM sync_runs ORDER BY started_at").fetchall()
    ]
    con.close()
    assert "running" not in states and states[-1] == "completed"

    # The same key, now refused: the 401 path must not leak it either.
    with SimulatorServer(SimulatorConfig(api_keys=frozenset({"another-key"}))) as refusing:
        state = sync_creations(
            manifest=str(ids_file), db_path=str(db), api_url=refusing.url, return_state=True,
            refresh=True,
        )  # fmt: skip
        assert state.is_failed()

    # The API gone: the circuit breaker's failure must not leak it either.
    monkeypatch.setenv("HAIPER_BREAKER_SECONDS", "0.5")
    state = sync_creations(
        manifest=str(ids_file), db_path=str(db), api_url=f"http://127.0.0.1:{dead_port()}",
        return_state=True, refresh=True,
    )  # fmt: skip
    assert state.is_failed() and "unreachable" in str(state.message)

    _assert_canary_nowhere(tmp_path, capfd, caplog)


def _assert_canary_nowhere(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_HOME, PREFECT_SERVER_DATABASE_CONNECTION_URL

    needle = CANARY.encode()
    captured = capfd.readouterr()
    assert CANARY not in captured.out + captured.err
    assert CANARY not in caplog.text
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
        assert artifacts, "the runs should have left artifacts"
        assert all(CANARY not in repr(a.model_dump()) for a in artifacts)
        runs = client.read_flow_runs()
        assert all(CANARY not in repr(r.parameters) for r in runs)
    database = Path(str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value()).split("///", 1)[1])
    places = [tmp_path, Path(str(PREFECT_HOME.value())), database.parent]
    searched = 0
    for place in places:
        for path in place.rglob("*"):
            if path.is_file():
                searched += 1
                assert needle not in path.read_bytes(), f"token found in {path}"
    assert searched >= 5  # the DuckDB files, the child's log, Prefect's database
