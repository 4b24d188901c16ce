"""End-to-end helpers: a real ``haiper-sync`` process (this checkout's code, in its own session
so a test signals its whole process group as a terminal's Ctrl-C does, output kept in files), the
rows two runs must agree on, and what a run told the Prefect API (its events, its logs).

Self-contained on purpose: the older tests' helper modules are being moved about.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import duckdb
import psutil

from tests.conftest import SIM_KEY

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
        return list(psutil.Process(self.proc.pid).children(recursive=True))

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


# Each mirrored table's key: no run may leave a key twice.
KEYS = {
    "creations": ["creation_id"],
    "creation_outputs": ["creation_id", "output_id"],
    "creation_status": ["creation_id"],
}


def rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """The mirrored rows, minus what differs between any two runs (as tests/test_chaos.py)."""
    with duckdb.connect(str(db), read_only=True) as con:
        out = {}
        for table, key in KEYS.items():
            total, distinct = con.execute(
                f"SELECT count(*), count(DISTINCT ({', '.join(key)})) FROM {table}"
            ).fetchone() or (0, 0)
            assert total == distinct, f"{table} has duplicate keys"
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
    return list(alive)


def dead_port() -> int:
    """A port on 127.0.0.1 with nothing listening (connects are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def events_about(db: Path, name: str, timeout: float = 20.0) -> list[Any]:
    """The events named ``name`` whose resource is this DuckDB file, read through the API."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    resource = f"haiper-sync.database.{db.absolute()}"
    deadline = time.monotonic() + timeout
    found: list[Any] = []
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:  # events reach the server in the background
            page = client.read_events(
                filter=EventFilter(event=EventNameFilter(name=[name])), limit=50
            )
            found = [e for e in page.events if e.resource.id == resource]
            if found:
                break
            time.sleep(0.2)
    return found


def flow_run_logs(flow_run_id: Any, until: str, timeout: float = 20.0) -> list[Any]:
    """The flow run's logs read through the API, once one starts with ``until``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    deadline = time.monotonic() + timeout
    logs: list[Any] = []
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:  # the API handler ships logs in the background
            logs = client.read_logs(log_filter=log_filter, sort=LogSort.TIMESTAMP_ASC)
            if any(log.message.startswith(until) for log in logs):
                break
            time.sleep(0.2)
    return logs
