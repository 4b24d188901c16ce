"""Storage failures in one line: DuckDB's and the OS's words turned into a `StorageError`.

A full disk shows first as ``Failed to commit: Could not write file "….wal": No space left on
device``; what the user must read is which file and why, not DuckDB's transaction state.
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from haiper_sync.errors import StorageError, StorageFull

# DuckDB's file-system errors: `Could not write file "…": <strerror>`, `Cannot open file …`.
_DUCKDB_FILE_ERROR = re.compile(
    r"(?:Could not|Cannot|Failed to) (?P<verb>[a-z]+)(?: all bytes)?(?: to| from)? file "
    r'"(?P<path>[^"]+)": (?P<reason>[^\n]+)',
    re.IGNORECASE,
)
_FULL_REASONS = ("no space left on device", "disk quota exceeded")
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# OS errors that mean the storage, not our code, is at fault.
_STORAGE_ERRNOS = _FULL_ERRNOS | {
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENOENT,
    errno.EIO,
    errno.EFBIG,
    errno.ENOTDIR,
}


def storage_failure(error: BaseException, verb: str = "write") -> StorageError | None:
    """The one-line `StorageError` that ``error`` is, or None when it is not about storage.

    ``verb`` says what was done to an OS error's file (DuckDB's messages say it themselves).
    """
    if isinstance(error, StorageError):
        return error
    if isinstance(error, duckdb.Error):
        match = _DUCKDB_FILE_ERROR.search(str(error))
        if match is None:
            return None
        path, reason = match["path"], match["reason"].strip().rstrip(".")
        full = reason.lower().startswith(_FULL_REASONS)
        return _failure(path, reason, full=full, verb=match["verb"].lower())
    if isinstance(error, OSError) and error.errno in _STORAGE_ERRNOS:
        path = str(error.filename) if error.filename is not None else "the database folder"
        reason = error.strerror or str(error)
        return _failure(path, reason, full=error.errno in _FULL_ERRNOS, verb=verb)
    return None


def _failure(path: str, reason: str, *, full: bool, verb: str) -> StorageError:
    if full:
        return StorageFull(f"disk full writing {path}: {reason}", path=path, reason=reason)
    return StorageError(f"cannot {verb} {path}: {reason}", path=path, reason=reason)


def rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK if a transaction is still open; never raise over the error that led here.

    A COMMIT that failed (disk full) has already ended the transaction: ROLLBACK would then
    raise "no transaction is active" and hide the reason.
    """
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN … COMMIT around the block; a failure rolls back, and only the first error leaves.

    A storage failure (at COMMIT or before) leaves as a one-line `StorageError`.
    """
    try:
        con.execute("BEGIN")
    except duckdb.Error as error:
        raise storage_failure(error) or error from None
    try:
        yield
        con.execute("COMMIT")
    except BaseException as error:
        rollback_quietly(con)
        failure = storage_failure(error)
        if failure is None or failure is error:
            raise
        raise failure from None
