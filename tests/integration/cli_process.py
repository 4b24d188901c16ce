"""A real ``haiper-sync`` process for end-to-end tests: this checkout's code, its own session
(so a test signals its whole process group, as a terminal's Ctrl-C does), output kept in files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import duckdb
import psutil

from tests.conftest import SIM_KEY
from tests.expected import table_counts

ROOT = Path(__file__).resolve().parents[2]
# When, by which run, how often asked (and so when to ask next): a resumed run asks again.
VOLATILE = {"first_synced_at", "last_synced_at", "last_run_id", "first_seen_at",
            "last_checked_at", "checks", "last_error", "unchanged_checks", "next_check_at",
            "not_found_since"}  # fmt: skip
# What a clean stop or a foreseen failure must never print.
NOISE = ("Traceback", "EventsWorker", "Error logging to API", "KeyError")


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a child ``haiper-sync``: this checkout first on the path, the
    simulator's key, its own temporary Prefect server (no ``PREFECT_API_URL``)."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["HAIPER_API_KEY"] = SIM_KEY
    return env | extra


class Cli:
    """``python -m cli.main ARGS`` running in its own session."""

    def __init__(
        self,
        args: list[str],
        folder: Path,
        *,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], Any] | None = None,
    ) -> None:
        self.out_path, self.err_path = folder / "cli.out", folder / "cli.err"
        self._out: IO[str] = self.out_path.open("w")
        self._err: IO[str] = self.err_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            cwd=ROOT,
            env=env or cli_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
            preexec_fn=preexec_fn,
        )

    @property
    def output(self) -> str:
        """Standard output and error so far."""
        return self.out_path.read_text() + self.err_path.read_text()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait_for(self, pattern: str, timeout: float = 120.0) -> re.Match[str]:
        """Wait until the output matches ``pattern``; fail if the process ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output)
            if match:
                return match
            assert self.proc.poll() is None, f"the CLI ended first:\n{self.output}"
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in {timeout:g} s:\n{self.output}")

    def descendants(self) -> list[psutil.Process]:
        """Every process the CLI started (its temporary Prefect server among them)."""
        return psutil.Process(self.proc.pid).children(recursive=True)

    def signal_group(self, signum: int) -> None:
        os.killpg(self.proc.pid, signum)

    def wait(self, timeout: float = 180.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._out.close()
            self._err.close()

    def kill(self) -> None:
        """Clean-up: the process group, if anything is left of it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        self._out.close()
        self._err.close()


def sync_args(manifest: Path, db: Path, api_url: str, *more: str) -> list[str]:
    return ["sync", "--manifest", str(manifest), "--db", str(db), "--api-url", api_url,
            "--rate-limit", "100000", *more]  # fmt: skip


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """The mirrored rows, minus what differs between any two runs (as tests/test_chaos.py)."""
    with duckdb.connect(str(db), read_only=True) as con:
        table_counts(con)  # asserts count(*) = count(distinct key) everywhere
        out = {}
        for table in ("creations", "creation_outputs", "creation_status"):
            names = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            keep = ", ".join(n for n in names if n not in VOLATILE)
            out[table] = sorted(con.execute(f"SELECT {keep} FROM {table}").fetchall(), key=repr)
    return out


def sync_runs(db: Path) -> list[tuple[Any, ...]]:
    """``(state, message)`` of each run, oldest first."""
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT state, message FROM sync_runs ORDER BY started_at").fetchall()


def still_alive(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those of ``processes`` still alive after waiting up to ``timeout`` s for them to end."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return alive
