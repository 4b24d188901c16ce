"""The disk fills up under a real ``haiper-sync sync``: one line naming the file, the OS's
reason and what was written, exit 1, no traceback; space freed, a rerun ends as if it never
ran out."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorConfig, SimulatorServer, generate_ids
from tests.conftest import SIM_KEY
from tests.integration.cli_process import NOISE, Cli, last_line, rows, sync_args, sync_runs

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]

N_IDS = 400


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``where``; skips the test where mounting is not permitted."""
    where.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"cannot mount a tmpfs here: {getattr(error, 'stderr', error)}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the file system has no byte left; return its size."""
    written = 0
    with path.open("wb", buffering=0) as ballast:
        for block in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    written += ballast.write(b"\0" * block)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
    return written


def test_a_full_disk_stops_the_run_in_one_line_and_a_rerun_with_space_ends_like_a_clean_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "ids.txt"
    manifest.write_text("\n".join(generate_ids(N_IDS, seed=182)) + "\n")
    monkeypatch.setenv("HAIPER_API_KEY", SIM_KEY)
    with SimulatorServer(SimulatorConfig(api_keys=frozenset({SIM_KEY}))) as fast:
        clean = sync_creations(
            manifest=str(manifest), db_path=str(tmp_path / "ref.duckdb"), api_url=fast.url,
            rate_limit=100_000, chunk_size=50,
        )  # fmt: skip
        assert clean.state == "completed"
        reference = rows(tmp_path / "ref.duckdb")

        with tmpfs(tmp_path / "fs", "32m") as fs:
            db = fs / "full.duckdb"
            # 250 ms a request: time to fill the disk once the first chunk is in.
            slow = SimulatorConfig(api_keys=frozenset({SIM_KEY}), latency_ms=250)
            with SimulatorServer(slow) as sim:
                cli = Cli(sync_args(manifest, db, sim.url, "--chunk-size", "50"), tmp_path)
                try:
                    cli.wait_for(r"Progress: \d+ of 400 IDs")
                    fill(fs / "ballast")
                    code = cli.wait(timeout=120)
                finally:
                    cli.kill()
            output, line = cli.output, last_line(cli.stderr)
            assert code == 1, output
            match = re.fullmatch(
                rf"haiper-sync: sync failed: disk full writing {re.escape(str(db))}(\.wal)?: "
                r"No space left on device; (?P<written>\d+) IDs written; fix that and run again",
                line,
            )
            assert match, output
            for noise in NOISE:
                assert noise not in output, output
            assert "rollback" not in output.lower(), output
            written = int(match["written"])
            assert 0 < written < N_IDS

            # Space again: the file has what was written; the rerun finishes the manifest.
            os.remove(fs / "ballast")
            assert len(rows(db)["creation_status"]) == written
            summary = sync_creations(
                manifest=str(manifest), db_path=str(db), api_url=fast.url, rate_limit=100_000,
                chunk_size=50,
            )  # fmt: skip
            assert summary.state == "completed"
            assert rows(db) == reference
            runs = sync_runs(db)
    assert runs[-1] == ("completed", None)
    # Not a byte left beside the file: the failed run's end waited in the temp folder, and the
    # next run wrote it before anything else.
    assert [state for state, _ in runs] == ["failed", "completed"], runs
    assert runs[0][1] == line.removeprefix("haiper-sync: sync failed: ")
