"""Real second processes holding the DuckDB file or the sync lock."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from haiper_sync.errors import DatabaseLocked
from haiper_sync.store import connection
from haiper_sync.store.connection import connect, lock_holder
from haiper_sync.store.lock import sync_lock


@contextmanager
def holder(code: str) -> Iterator[subprocess.Popen[str]]:
    """Run ``code`` in another Python process until it prints 'ready'; kill it afterwards."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def hold_db(path: Path) -> str:
    return (
        "import duckdb, time\n"
        f"con = duckdb.connect({str(path)!r})\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )


def test_a_held_file_is_waited_for_then_refused_naming_the_holder(db_path: Path) -> None:
    with connection.open_database(db_path):
        pass
    waits: list[str] = []
    fake_now = [0.0]

    def fake_sleep(seconds: float) -> None:
        fake_now[0] += seconds

    with holder(hold_db(db_path)) as proc, pytest.raises(DatabaseLocked) as info:
        connect(
            db_path, timeout=5.0, on_wait=waits.append, sleep=fake_sleep, clock=lambda: fake_now[0]
        )
    assert f"PID {proc.pid}" in str(info.value)
    assert len(waits) == 1 and f"PID {proc.pid}" in waits[0]
    assert fake_now[0] >= 5.0


def test_the_file_is_usable_again_once_the_holder_lets_go(db_path: Path) -> None:
    with connection.open_database(db_path):
        pass
    with holder(hold_db(db_path)), pytest.raises(DatabaseLocked):
        connect(db_path, timeout=0)
    con = connect(db_path, timeout=0)
    con.close()


def test_lock_holder_parses_duckdb_messages() -> None:
    message = (
        'IO Error: Could not set lock on file "/x.duckdb": Conflicting lock is held in '
        "/usr/bin/python3.11 (PID 4242) by user root. See also https://duckdb.org/docs"
    )
    assert lock_holder(message) == "/usr/bin/python3.11 (PID 4242)"
    assert lock_holder("something else") is None


def holding_the_sync_lock(db_path: Path) -> str:
    """A second process's code: hold the sync lock of ``db_path`` for a minute."""
    return (
        "import time\n"
        "from haiper_sync.store.lock import sync_lock\n"
        f"with sync_lock({str(db_path)!r}):\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
    )


def test_a_second_sync_of_the_same_database_is_refused(db_path: Path) -> None:
    code = holding_the_sync_lock(db_path)
    with (
        holder(code) as proc,
        pytest.raises(DatabaseLocked, match=f"PID {proc.pid}"),
        sync_lock(db_path),
    ):
        pass
    with sync_lock(db_path):  # free again once the other sync is gone (even killed)
        pass


def test_a_waiting_sync_says_so_at_once_and_on_whom(db_path: Path) -> None:
    code = holding_the_sync_lock(db_path)
    heard: list[str] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with (
        holder(code) as proc,
        pytest.raises(DatabaseLocked),
        sync_lock(db_path, timeout=3, on_wait=heard.append, sleep=sleep, clock=lambda: now[0]),
    ):
        pass
    assert heard == [
        f"another sync (PID {proc.pid}) is writing {db_path}; waiting up to 3 s for it to finish"
    ]
