"""The DuckDB shell analysts have opens a file haiper-sync wrote (its storage format is 1.4's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorServer, generate_ids
from haiper_sync.store.connection import STORAGE_VERSION
from tests.support.manifest import Manifest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server", "api_key_env")]
SHELL = Path(sys.executable).parent / "duckdb"  # duckdb-cli, installed by `make install`


def shell(db: Path, sql: str) -> str:
    """Run one statement in the DuckDB shell, read-only, CSV out."""
    out = subprocess.run(
        [str(SHELL), "-readonly", "-csv", str(db), sql],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_duckdb_shell_reads_a_synced_file(
    sim: SimulatorServer, tmp_path: Path, manifest: Manifest
) -> None:
    version = subprocess.run([str(SHELL), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("v1.")  # a shell older than the duckdb module we write with
    ids_file = manifest(generate_ids(40, seed=61))
    db = tmp_path / "haiper.duckdb"
    summary = sync_creations(
        manifest=str(ids_file), db_path=str(db), api_url=sim.url, rate_limit=100_000
    )
    con = duckdb.connect(str(db), read_only=True)
    storage = con.execute(
        "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = 'haiper'"
    ).fetchone()
    con.close()
    assert storage is not None and str(storage[0]).startswith(STORAGE_VERSION)

    assert shell(db, "SELECT count(*) AS n FROM creations") == f"n\n{summary.ids_fetched}"
    assert shell(db, "SELECT count(*) AS n FROM creation_status") == "n\n40"
    # The analysts' views parse and run in the older shell too.
    days = shell(db, "SELECT sum(created) AS n FROM daily_creations")
    assert days == "n\n40"
