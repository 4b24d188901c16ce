"""A manifest on standard input, through the CLI to a real run."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from cli.main import main
from haiper_sync.simulator import SimulatorServer, generate_ids


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_server", "api_key_env")
def test_standard_input_on_the_cli(
    sim: SimulatorServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = generate_ids(12, seed=100)
    stdin = io.TextIOWrapper(io.BytesIO(("\n".join(ids) + "\n").encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    db = tmp_path / "stdin.duckdb"
    code = main(["sync", "--manifest", "-", "--db", str(db), "--api-url", sim.url])
    assert code == 0
    assert ": 12 IDs, 0 rejected" in capsys.readouterr().out
