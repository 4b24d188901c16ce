"""``haiper-sync sync`` in-process: exit codes and one-line reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from haiper_sync.simulator import SimulatorServer, generate_ids

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
    sim: SimulatorServer, tmp_path: Path, db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "ids.txt"
    manifest.write_text("\n".join([*generate_ids(30, seed=9), "nf-gone"]) + "\n")
    assert main(args(manifest, db_path, sim)) == 0
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
) -> None:
    manifest = tmp_path / "ids.txt"
    manifest.write_text("\n".join(generate_ids(5, seed=10)) + "\n")
    assert main(args(manifest, db_path, sim)) == 1
    assert "no API key" in capsys.readouterr().err.strip().splitlines()[-1]

    monkeypatch.setenv("HAIPER_API_KEY", "not-the-key")
    assert main(args(manifest, db_path, sim)) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("haiper-sync: sync failed:") and "401" in last
    assert "not-the-key" not in last
