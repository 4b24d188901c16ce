"""Getting at the DuckDB file politely: bounded waits, and one sync per database."""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from haiper_sync.errors import DatabaseLocked

_HOLDER = re.compile(r"Conflicting lock is held in (.+?) \(PID (\d+)\)")


def lock_holder(message: str) -> str | None:
    """The program and PID DuckDB names in a lock-conflict message."""
    match = _HOLDER.search(message)
    if match is None:
        return None
    return f"{match.group(1).strip()} (PID {match.group(2)})"


def connect(
    path: str | Path,
    *,
    read_only: bool = False,
    timeout: float = 60.0,
    on_wait: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, waiting up to ``timeout`` s while another process holds it."""
    deadline = clock() + timeout
    delay = 0.05
    warned = False
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" not in text.lower():
                raise
            holder = lock_holder(text) or "another process"
            if clock() >= deadline:
                raise DatabaseLocked(
                    f"{path} is locked by {holder}; gave up after {timeout:g} s. "
                    "Close that session (an open `duckdb` shell holds the file) and retry."
                ) from None
            if on_wait is not None and not warned:
                on_wait(f"{path} is locked by {holder}; waiting up to {timeout:g} s")
                warned = True
            sleep(min(delay, max(0.0, deadline - clock())))
            delay = min(delay * 2, 1.0)
            continue
        # An unknown table name must be an error, never a lookup of a same-named Python
        # variable in the caller's frame (DuckDB's "replacement scans").
        con.execute("SET python_enable_replacements = false")
        return con


@contextmanager
def sync_lock(
    db_path: str | Path,
    *,
    timeout: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[None]:
    """Hold ``<db>.sync.lock`` for a whole sync: two syncs of one database never interleave."""
    lock_path = Path(f"{db_path}.sync.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = clock() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                    raise DatabaseLocked(
                        f"another sync (PID {holder}) is already writing {db_path}; "
                        "wait for it to finish"
                    ) from None
                sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing drops the flock, also when the process is killed
