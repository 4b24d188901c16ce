"""``haiper-sync sync`` in-process: exit codes and one-line reasons."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from cli.main import main
from haiper_sync.simulator import SimulatorConfig, SimulatorServer, generate_ids
from tests.conftest import SIM_KEY
from tests.support.dead_port import dead_port
from tests.support.expected import table_counts
from tests.support.manifest import Manifest

pytestmark = pytest.mark.integration


def args(manifest: Path, db: Path, sim: SimulatorServer) -> list[str]:
    return [
        "sync", "--manifest", str(manifest), "--db", str(db), "--api-url", sim.url,
        "--rate-limit", "100000", "--chunk-size", "20",
    ]  # fmt: skip


def test_missing_manifest_exits_1_with_the_file_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sync", "--manifest", str(tmp_path / "nope.txt"), "--db", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err == f"haiper-sync: manifest {tmp_path / 'nope.txt'}: no such file"
    assert not (tmp_path / "d").exists()


@pytest.mark.usefixtures("prefect_server", "api_key_env")
def test_sync_prints_a_summary_and_exits_0_even_with_failed_ids(
    sim: SimulatorServer,
    tmp_path: Path,
    db_path: Path,
    capsys: pytest.CaptureFixture[str],
    manifest: Manifest,
) -> None:
    ids_file = manifest([*generate_ids(30, seed=9), "nf-gone"])
    assert main(args(ids_file, db_path, sim)) == 0
    out = capsys.readouterr().out
    assert "completed" in out and "requests" in out and "creation_status" in out
    assert "1 IDs (see table sync_errors)" in out


@pytest.mark.usefixtures("prefect_server")
def test_no_key_and_wrong_key_exit_1_with_a_reason(
    sim: SimulatorServer,
    tmp_path: Path,
    db_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    manifest: Manifest,
) -> None:
    ids_file = manifest(generate_ids(5, seed=10))
    assert main(args(ids_file, db_path, sim)) == 1
    assert "no API key" in capsys.readouterr().err.strip().splitlines()[-1]

    monkeypatch.setenv("HAIPER_API_KEY", "not-the-key")
    assert main(args(ids_file, db_path, sim)) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("haiper-sync: sync failed:") and "401" in last
    assert "not-the-key" not in last


@pytest.mark.usefixtures("prefect_server", "api_key_env")
def test_a_dead_api_fails_the_run_loudly_and_keeps_what_was_synced(
    sim: SimulatorServer,
    tmp_path: Path,
    db_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    manifest: Manifest,
) -> None:
    ids_file = manifest(generate_ids(40, seed=10))
    assert main(args(ids_file, db_path, sim)) == 0
    with duckdb.connect(str(db_path), read_only=True) as con:
        before = table_counts(con)
    capsys.readouterr()

    monkeypatch.setenv("HAIPER_BREAKER_SECONDS", "1")
    dead = f"http://127.0.0.1:{dead_port()}"
    code = main([*args(ids_file, db_path, sim), "--api-url", dead, "--refresh"])
    # Prefect's own log lines go to stderr too; ours is the one line the user acts on.
    ours = [line for line in capsys.readouterr().err.splitlines() if "haiper-sync:" in line]
    assert code == 1 and len(ours) == 1
    assert ours[0].startswith(f"haiper-sync: sync failed: the API at {dead} is unreachable")
    assert "connection refused" in ours[0]
    with duckdb.connect(str(db_path), read_only=True) as con:
        after = table_counts(con)
        state, message = con.execute(  # type: ignore[misc]
            "SELECT state, message FROM sync_runs ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
    assert after == before | {"sync_runs": 2}
    assert state == "failed" and dead in message and "connection refused" in message


@pytest.mark.usefixtures("prefect_server", "api_key_env")
def test_an_api_answering_only_5xx_fails_the_run_after_few_requests(
    tmp_path: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch, manifest: Manifest
) -> None:
    from flows import sync_creations

    monkeypatch.setenv("HAIPER_BREAKER_SECONDS", "0.5")
    ids_file = manifest(generate_ids(600, seed=11))
    config = SimulatorConfig(api_keys=frozenset({SIM_KEY}), p_500=1.0, latency_ms=20)
    with SimulatorServer(config) as sim:
        state = sync_creations(
            manifest=str(ids_file),
            db_path=str(db_path),
            api_url=sim.url,
            concurrency=4,
            rate_limit=100_000,
            chunk_size=50,
            return_state=True,
        )
        served = sim.stats.snapshot()["total"]
    assert state.is_failed()
    assert "unreachable" in str(state.message)
    # Ten failures over half a second open the breaker (4 in flight, 20 ms each: about 100
    # requests), instead of 600 IDs x 5 attempts.
    assert 10 <= served <= 300
    with duckdb.connect(str(db_path), read_only=True) as con:
        run = con.execute("SELECT state, message FROM sync_runs").fetchall()
    assert run[0][0] == "failed" and "HTTP 500" in run[0][1]
