"""The CLI's own temporary Prefect server: booting while the flows import, stopped by a signal
that comes before it is up, a server that cannot start told in one line, and none left when a
Prefect profile names the API."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import psutil
import pytest

from haiper_sync.simulator import SimulatorConfig, SimulatorServer, generate_ids
from tests.conftest import SIM_KEY
from tests.integration.cli_process import Cli, cli_env, last_line, still_alive, sync_args

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorConfig(api_keys=frozenset({SIM_KEY}))) as server:
        yield server


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(generate_ids(3)) + "\n")
    return path


def test_a_signal_while_the_server_starts_stops_both_at_once(
    sim: SimulatorServer, manifest: Path, tmp_path: Path
) -> None:
    db = tmp_path / "early.duckdb"
    cli = Cli(sync_args(manifest, db, sim.url), tmp_path, env=cli_env())
    try:
        deadline = time.monotonic() + 30
        while not (children := cli.descendants()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert children, "the CLI should start its Prefect server"
        assert cli.proc.poll() is None, cli.output
        cli.signal_group(signal.SIGINT)
        code = cli.wait(timeout=30)
    finally:
        cli.kill()
    assert code == 130, cli.output
    assert "Traceback" not in cli.output, cli.output
    assert still_alive(children, timeout=5) == []


def test_a_prefect_server_that_cannot_start_is_one_line_and_nothing_is_left(
    sim: SimulatorServer, manifest: Path, tmp_path: Path
) -> None:
    db = tmp_path / "h.duckdb"
    # Its database cannot be opened: the server's startup fails every time.
    env = cli_env(
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/p.db"
    )
    cli = Cli(sync_args(manifest, db, sim.url), tmp_path, env=env)
    try:
        code = cli.wait(timeout=120)
    finally:
        cli.kill()
    assert code == 1, cli.output
    line = last_line(cli.stderr)
    assert line.startswith("haiper-sync: the temporary Prefect server exited with code 3"), line
    assert "PREFECT_API_URL" in line
    assert not db.exists()  # no run began


@pytest.mark.usefixtures("prefect_server")
def test_a_profile_that_names_the_api_is_used_and_no_server_is_left(
    sim: SimulatorServer, manifest: Path, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f'active = "team"\n[profiles.team]\nPREFECT_API_URL = "{api}"\n')

    def flow_runs() -> int:
        return int(httpx.post(f"{api}/flow_runs/count", json={}).json())

    before = flow_runs()
    db = tmp_path / "profile.duckdb"
    # Not in the environment: only the profile names the API.
    cli = Cli(
        sync_args(manifest, db, sim.url), tmp_path, env=cli_env(PREFECT_PROFILES_PATH=str(profiles))
    )
    seen: set[psutil.Process] = set()
    try:
        while cli.proc.poll() is None:
            seen.update(cli.descendants())
            time.sleep(0.02)
        code = cli.wait(timeout=120)
    finally:
        cli.kill()
    assert code == 0, cli.output
    assert flow_runs() == before + 1  # the run was recorded on the profile's server
    assert still_alive(list(seen), timeout=5) == []
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from creations").fetchone() == (3,)


def test_packages_in_the_working_directory_do_not_replace_the_servers_own(
    sim: SimulatorServer, manifest: Path, tmp_path: Path
) -> None:
    # A user's project with folders named like the modules the server is started from.
    for package in ("cli", "uvicorn", "prefect"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("raise SystemExit(9)\n")
    (tmp_path / "cli" / "prefect_server.py").write_text("raise SystemExit(9)\n")
    db = tmp_path / "cwd.duckdb"
    # The installed command, run where the user is (not `python -m`, which would read cwd too).
    command = Path(sys.executable).parent / "haiper-sync"
    done = subprocess.run(
        [str(command), *sync_args(manifest, db, sim.url)],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from creations").fetchone() == (3,)
