"""One sync per database: ``<db>.sync.lock`` held for a whole run."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from haiper_sync.errors import DatabaseLocked


@contextmanager
def sync_lock(
    db_path: str | Path,
    *,
    timeout: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[None]:
    """Hold ``<db>.sync.lock`` for a whole sync: two syncs of one database never interleave.

    While another sync holds it, ``on_wait`` hears once, at once, who holds it and for how long
    this one will wait.
    """
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
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                if clock() >= deadline:
                    raise DatabaseLocked(
                        f"another sync (PID {holder}) is already writing {db_path}; "
                        "wait for it to finish"
                    ) from None
                if on_wait is not None:
                    on_wait(
                        f"another sync (PID {holder}) is writing {db_path}; waiting up to "
                        f"{timeout:g} s for it to finish"
                    )
                    on_wait = None
                sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing drops the flock, also when the process is killed
