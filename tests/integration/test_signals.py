"""Ctrl-C and SIGTERM for real: a ``haiper-sync sync`` process signalled as a terminal or a
service manager does (its whole process group), mid-run.

It stops within seconds with the shell's exit code and one line, records the run
``interrupted``, leaves no Prefect server behind, and a rerun ends with exactly the rows of a
run that was never interrupted.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorConfig, SimulatorServer, generate_ids
from tests.conftest import SIM_KEY
from tests.integration.cli_process import (
    NOISE,
    Cli,
    cli_env,
    events_about,
    last_line,
    rows,
    still_alive,
    sync_args,
    sync_runs,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]

N_IDS = 400
INTERRUPTED = (
    r"haiper-sync: interrupted by (?P<sig>SIG[A-Z]+): (?P<done>\d+) of "
    rf"{N_IDS} IDs written; run again to resume"
)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("signals") / "ids.txt"
    path.write_text("\n".join(generate_ids(N_IDS, seed=181)) + "\n")
    return path


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[SimulatorServer]:
    # 250 ms a request: a chunk of 50 takes a second or two, the whole run over ten.
    config = SimulatorConfig(api_keys=frozenset({SIM_KEY}), latency_ms=250)
    with SimulatorServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def fast_sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorConfig(api_keys=frozenset({SIM_KEY}))) as server:
        yield server


@pytest.fixture(scope="module")
def reference(
    manifest: Path,
    fast_sim: SimulatorServer,
    tmp_path_factory: pytest.TempPathFactory,
    prefect_server: None,
) -> dict[str, list[tuple[object, ...]]]:
    """The rows of an uninterrupted run of the manifest."""
    db = tmp_path_factory.mktemp("reference") / "ref.duckdb"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HAIPER_API_KEY", SIM_KEY)
        summary = sync_creations(
            manifest=str(manifest), db_path=str(db), api_url=fast_sim.url, rate_limit=100_000,
            chunk_size=50,
        )  # fmt: skip
    assert summary.state == "completed"
    return rows(db)


def start_and_wait_for_a_chunk(
    manifest: Path, db: Path, sim: SimulatorServer, folder: Path, env: dict[str, str] | None = None
) -> Cli:
    cli = Cli(sync_args(manifest, db, sim.url, "--chunk-size", "50"), folder, env=env)
    # The first chunk committed: the progress line at its write.
    cli.wait_for(r"Progress: \d+ of 400 IDs")
    return cli


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_run_in_seconds_and_a_rerun_ends_like_an_uninterrupted_one(
    signum: signal.Signals,
    manifest: Path,
    slow_sim: SimulatorServer,
    fast_sim: SimulatorServer,
    reference: dict[str, list[tuple[object, ...]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "signalled.duckdb"
    cli = start_and_wait_for_a_chunk(manifest, db, slow_sim, tmp_path)
    try:
        children = cli.descendants()  # the CLI's temporary Prefect server among them
        assert children, "the CLI should run its own Prefect server"
        sent = time.monotonic()
        cli.signal_group(signum)
        code = cli.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        cli.kill()
    output, stderr = cli.output, cli.stderr
    assert code == 128 + signum, output
    assert took < 5, f"took {took:.1f} s to stop:\n{output}"
    line = last_line(stderr)
    match = re.fullmatch(INTERRUPTED, line)
    assert match and match["sig"] == signum.name, output
    for noise in NOISE:
        assert noise not in output, output
    # Nothing it started outlives it: its Prefect server stopped with it.
    assert still_alive(children, timeout=5) == []

    # The run's row says how it ended, in the same words; what it wrote is in the file.
    assert sync_runs(db) == [("interrupted", line.removeprefix("haiper-sync: "))]
    written = int(match["done"])
    assert 0 < written < N_IDS
    assert len(rows(db)["creation_status"]) == written

    # Run again: it resumes, and ends with the rows of a run that was never interrupted.
    monkeypatch.setenv("HAIPER_API_KEY", SIM_KEY)
    summary = sync_creations(
        manifest=str(manifest), db_path=str(db), api_url=fast_sim.url, rate_limit=100_000,
        chunk_size=50,
    )  # fmt: skip
    assert summary.state == "completed"
    # What the first run finished is not asked again.
    assert 0 < summary.ids_skipped <= written
    assert rows(db) == reference
    assert [state for state, _ in sync_runs(db)] == ["interrupted", "completed"]


def test_a_second_sigint_exits_at_once(
    manifest: Path, slow_sim: SimulatorServer, tmp_path: Path
) -> None:
    cli = start_and_wait_for_a_chunk(manifest, tmp_path / "twice.duckdb", slow_sim, tmp_path)
    try:
        children = cli.descendants()
        sent = time.monotonic()
        cli.signal_group(signal.SIGINT)
        time.sleep(0.05)  # the first one is being handled
        cli.signal_group(signal.SIGINT)
        code = cli.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        cli.kill()
    assert code == 130, cli.output
    assert took < 1.5, f"took {took:.1f} s"
    # Even at once, the temporary Prefect server (in its own session) does not outlive it.
    assert still_alive(children, timeout=5) == []


def test_an_interrupted_run_announces_it_on_the_prefect_server_it_reports_to(
    manifest: Path, slow_sim: SimulatorServer, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    db = tmp_path / "announced.duckdb"
    env = cli_env(PREFECT_API_URL=str(PREFECT_API_URL.value()))  # the session's server
    cli = start_and_wait_for_a_chunk(manifest, db, slow_sim, tmp_path, env=env)
    try:
        cli.signal_group(signal.SIGINT)
        code = cli.wait(timeout=30)
    finally:
        cli.kill()
    assert code == 130, cli.output
    line = last_line(cli.stderr).removeprefix("haiper-sync: ")
    (event,) = events_about(db, "haiper-sync.run.interrupted")
    assert event.payload["message"] == line
    assert event.payload["db_path"] == str(db.absolute())
    assert sync_runs(db) == [("interrupted", line)]
