"""Each foreseen way a run fails, read back through the Prefect API: a Failed state with its one
line, a ``haiper-sync.run.failed`` event at once (the file's path, the same line), a ``failed``
``sync_runs`` row (at once, or from the set-aside end once the file is free), and no traceback
in the run's logs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorServer, generate_ids
from haiper_sync.store.set_aside import set_aside_waiting
from tests.integration.cli_process import dead_port, events_about, flow_run_logs, sync_runs

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server", "api_key_env")]

# Holds ``<db>.sync.lock`` as another sync would, until its standard input closes.
SYNC_LOCK_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1] + ".sync.lock", os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)  # as sync_lock does: a shorter PID must not keep the old one's tail
os.pwrite(fd, str(os.getpid()).encode(), 0)
print("holding", flush=True)
sys.stdin.read()
"""
# An analyst's `duckdb -readonly` session on the file, until its standard input closes.
ANALYST = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("holding", flush=True)
sys.stdin.read()
con.close()
"""


class Holder:
    def __init__(self, script: str, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "holding\n"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.proc.kill()
        holder.proc.wait()


def ids_file(tmp_path: Path, ids: list[str]) -> Path:
    manifest = tmp_path / "ids.txt"
    manifest.write_text("\n".join(ids) + "\n")
    return manifest


def assert_failed_and_announced(state: Any, db: Path, *words: str) -> str:
    """The run is Failed with one line holding ``words``, announced by its event at once,
    with no traceback in its logs; return the line."""
    assert state.is_failed()
    message = str(state.message)
    assert "\n" not in message and all(word in message for word in words), message
    (event,) = events_about(db, "haiper-sync.run.failed")
    assert event.payload["message"] == message
    assert event.payload["db_path"] == str(db.absolute())
    assert event.payload["flow_run_url"] and event.payload["host"]
    logs = flow_run_logs(state.state_details.flow_run_id, until="Finished in state")
    assert any(log.message.startswith("Finished in state Failed") for log in logs)
    for log in logs:
        for noise in ("Traceback", "KeyError", "Crash detected"):
            assert noise not in log.message, log.message
    return message


def test_another_sync_holding_the_lock_fails_the_run_at_once_with_its_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim: SimulatorServer, holders: list[Holder]
) -> None:
    monkeypatch.setenv("HAIPER_LOCK_TIMEOUT", "1")
    db = tmp_path / "locked.duckdb"
    manifest = ids_file(tmp_path, generate_ids(5, seed=183))
    run: dict[str, Any] = dict(
        manifest=str(manifest), db_path=str(db), api_url=sim.url, rate_limit=100_000
    )
    assert sync_creations(**run).state == "completed"

    holder = Holder(SYNC_LOCK_HOLDER, db)
    holders.append(holder)
    state = sync_creations(**run, refresh=True, return_state=True)
    # Announced while the other sync still holds the lock.
    message = assert_failed_and_announced(
        state, db, f"another sync (PID {holder.proc.pid}) is already writing", "wait for it"
    )
    # Only the lock was held, not the file: the failed run's row is written at once.
    assert sync_runs(db) == [("completed", None), ("failed", message)]
    assert set_aside_waiting(db) == []
    holder.release()


def test_an_analyst_holding_the_file_fails_the_run_and_the_next_run_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim: SimulatorServer, holders: list[Holder]
) -> None:
    monkeypatch.setenv("HAIPER_LOCK_TIMEOUT", "1")
    db = tmp_path / "analysed.duckdb"
    manifest = ids_file(tmp_path, generate_ids(5, seed=184))
    run: dict[str, Any] = dict(
        manifest=str(manifest), db_path=str(db), api_url=sim.url, rate_limit=100_000
    )
    assert sync_creations(**run).state == "completed"

    holder = Holder(ANALYST, db)
    holders.append(holder)
    state = sync_creations(**run, refresh=True, return_state=True)
    message = assert_failed_and_announced(
        state, db, f"(PID {holder.proc.pid})", "gave up after 1 s", "Close that session"
    )
    # The file was held at the run's end too: its end (with its start) waits beside the file.
    assert len(set_aside_waiting(db)) == 1
    holder.release()

    # The next run writes it before anything else: the failed run has its row.
    assert sync_creations(**run).state == "completed"
    assert sync_runs(db) == [("completed", None), ("failed", message), ("completed", None)]
    assert set_aside_waiting(db) == []


def test_too_many_errors_fail_the_run_and_say_so(tmp_path: Path, sim: SimulatorServer) -> None:
    db = tmp_path / "unknown.duckdb"
    manifest = ids_file(tmp_path, [f"nf-{n}" for n in range(6)])
    state = sync_creations(
        manifest=str(manifest), db_path=str(db), api_url=sim.url, rate_limit=100_000,
        return_state=True,
    )  # fmt: skip
    message = assert_failed_and_announced(state, db, "6 of 6 IDs errored", "max_error_ratio")
    assert sync_runs(db) == [("failed", message)]


def test_an_unreachable_api_fails_the_run_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAIPER_BREAKER_SECONDS", "0.5")
    db = tmp_path / "offline.duckdb"
    manifest = ids_file(tmp_path, generate_ids(20, seed=185))
    url = f"http://127.0.0.1:{dead_port()}"
    state = sync_creations(
        manifest=str(manifest), db_path=str(db), api_url=url, rate_limit=100_000,
        return_state=True,
    )  # fmt: skip
    message = assert_failed_and_announced(state, db, "unreachable")
    assert sync_runs(db) == [("failed", message)]
