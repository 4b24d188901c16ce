"""Getting at the DuckDB file politely: bounded waits for a file another process holds, short
units of work."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from haiper_sync.errors import DatabaseLocked, SchemaError
from haiper_sync.settings import DEFAULTS
from haiper_sync.store.failures import storage_failure
from haiper_sync.store.migrations import migrate

# New files are written in the storage format of DuckDB 1.4, which the DuckDB shells analysts
# have (duckdb-cli 1.4 and 1.5, DBeaver's and harlequin's bundled engines) can open; DuckDB 2.0's
# own format cannot be read by them. A file keeps the format it was created in.
STORAGE_VERSION = "v1.4.0"

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
    timeout: float = DEFAULTS.lock_timeout,
    on_wait: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, waiting up to ``timeout`` s while another process holds it."""
    deadline = clock() + timeout
    delay = 0.05
    warned = False
    creating = not read_only and not Path(path).exists()
    config: dict[str, str | bool | int | float | list[str]] = (
        {"storage_compatibility_version": STORAGE_VERSION} if creating else {}
    )
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            text = str(exc)
            failure = storage_failure(exc)
            if failure is not None:
                raise failure from None
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
def open_database(
    path: str | Path,
    *,
    read_only: bool = False,
    timeout: float = DEFAULTS.lock_timeout,
    on_wait: Callable[[str], None] | None = None,
    migrate_schema: bool = True,
    init_existing: bool = False,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open (and, when writable, migrate) the database for one short unit of work, then close.

    Short windows let an analyst's read-only session get in between a sync's writes. A run
    migrates once when it starts; its per-chunk writes pass ``migrate_schema=False``.
    ``init_existing`` lets the migration add haiper-sync's tables to a file that has others.
    """
    if not read_only:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise storage_failure(error, "create") or error from None
    con = connect(path, read_only=read_only, timeout=timeout, on_wait=on_wait)
    failed = False
    try:
        if migrate_schema and not read_only:
            try:
                migrate(con, init_existing=init_existing)
            except SchemaError as error:
                raise type(error)(f"{path}: {error}") from None
        yield con
    except duckdb.Error as error:
        # Only DuckDB's own errors: an OSError of the caller's (a manifest not found) is not
        # about this file.
        failed = True
        failure = storage_failure(error)
        if failure is None:
            raise
        raise failure from None
    except BaseException:
        failed = True
        raise
    finally:
        _close(con, quietly=failed)


def _close(con: duckdb.DuckDBPyConnection, *, quietly: bool) -> None:
    # Closing checkpoints the WAL into the file, which can fail on a full disk too: after an
    # error, that second failure must not replace the first.
    try:
        con.close()
    except duckdb.Error as error:
        if quietly:
            return
        raise storage_failure(error) or error from None
