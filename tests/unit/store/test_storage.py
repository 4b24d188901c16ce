"""A full disk, a read-only folder, an I/O error: one line naming the file and the OS's reason,
never the ROLLBACK error that followed it, and the file keeps every chunk that committed."""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from haiper_sync.errors import HaiperSyncError, StorageError, StorageFull
from haiper_sync.rows import ChunkRows, ErrorRecord, StatusRow
from haiper_sync.store.connection import open_database
from haiper_sync.store.failures import storage_failure, transaction
from haiper_sync.store.runs import start_run
from haiper_sync.store.writes import write_chunk
from haiper_sync.summary import RunCounts

# --- the classification, on DuckDB's and the OS's own words -----------------------------------


@pytest.mark.parametrize(
    ("error", "kind", "line"),
    [
        (
            duckdb.TransactionException(
                'TransactionContext Error: Failed to commit: Could not write file "/x/h.duckdb.wal"'
                ": No space left on device"
            ),
            StorageFull,
            "disk full writing /x/h.duckdb.wal: No space left on device",
        ),
        (
            duckdb.IOException('IO Error: Cannot open file "/r/h.duckdb": Read-only file system'),
            StorageError,
            "cannot open /r/h.duckdb: Read-only file system",
        ),
        (
            duckdb.IOException('IO Error: Could not write file "/x/h.duckdb": Input/output error'),
            StorageError,
            "cannot write /x/h.duckdb: Input/output error",
        ),
        (
            OSError(30, "Read-only file system", "/r/sub"),
            StorageError,
            "cannot write /r/sub: Read-only file system",
        ),
        (
            OSError(28, "No space left on device", "/x"),
            StorageFull,
            "disk full writing /x: No space left on device",
        ),
    ],
)
def test_storage_failures_are_one_line(error: BaseException, kind: type, line: str) -> None:
    failure = storage_failure(error)
    assert type(failure) is kind and str(failure) == line
    copy = pickle.loads(pickle.dumps(failure))
    assert type(copy) is kind and (copy.path, copy.reason) == (failure.path, failure.reason)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "error",
    [
        duckdb.IOException(
            'IO Error: Could not set lock on file "/x/h.duckdb": Conflicting lock is held in '
            "python (PID 3)"
        ),
        duckdb.CatalogException("Catalog Error: Table with name nope does not exist!"),
        ValueError("not ours"),
        OSError(111, "Connection refused"),
    ],
)
def test_other_errors_are_not_storage_failures(error: BaseException) -> None:
    assert storage_failure(error) is None


def test_a_failed_block_rolls_back_and_keeps_its_own_error(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("CREATE TABLE t (i INTEGER)")
    with pytest.raises(ZeroDivisionError), transaction(con):
        con.execute("INSERT INTO t VALUES (1)")
        con.execute("ROLLBACK")  # the transaction already ended: the cleanup's error is dropped
        raise ZeroDivisionError
    assert con.execute("SELECT count(*) FROM t").fetchall() == [(0,)]
    with transaction(con):
        con.execute("INSERT INTO t VALUES (2)")
    assert con.execute("SELECT i FROM t").fetchall() == [(2,)]


# --- for real: a tiny file system ---------------------------------------------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def tiny_fs(where: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where``; skips the test if mounting is not permitted."""
    where.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"cannot mount a tmpfs here: {getattr(error, 'stderr', error)}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def noisy_chunk(n: int, ids: int = 100) -> ChunkRows:
    """A chunk of errored IDs with 4 KB of incompressible body each (~400 KB)."""
    now = datetime.now(UTC)
    names = [f"c{n}-{i}" for i in range(ids)]
    return ChunkRows(
        statuses=[StatusRow(c, None, None, now, "x") for c in names],
        errors=[
            ErrorRecord(c, "status", "GET x -> HTTP 400", 400, raw_body=os.urandom(2000).hex())
            for c in names
        ],
        counts=RunCounts(ids_errored=ids),
    )


def test_a_full_disk_is_one_line_and_the_file_keeps_what_committed(tmp_path: Path) -> None:
    with tiny_fs(tmp_path / "fs") as fs:
        db = fs / "haiper.duckdb"
        committed = 0
        with open_database(db) as con:
            start_run(con, "run-1", manifest="ids.txt", refresh=False)
        with pytest.raises(StorageFull) as caught:
            for n in range(50):
                with open_database(db, migrate_schema=False) as con:
                    write_chunk(con, "run-1", noisy_chunk(n))
                committed += 1
        error = caught.value
        assert committed >= 1
        assert re.fullmatch(
            rf"disk full writing {re.escape(str(db))}(\.wal)?: No space left on device", str(error)
        ), str(error)
        assert "rollback" not in str(error).lower() and "\n" not in str(error)
        assert isinstance(error, HaiperSyncError) and error.reason == "No space left on device"

        # Space freed: the file opens, with every committed chunk and nothing of the failed one.
        _mount("-o", "remount,size=64m", str(fs))
        with open_database(db) as con:
            rows = con.execute(
                "SELECT count(*), count(DISTINCT run_id) FROM sync_errors"
            ).fetchall()
            errored = con.execute("SELECT ids_errored FROM sync_runs").fetchall()
            write_chunk(con, "run-1", noisy_chunk(99, ids=1))
        assert rows == [(committed * 100, 1)]
        assert errored == [(committed * 100,)]


def test_a_read_only_folder_is_one_line(tmp_path: Path) -> None:
    with tiny_fs(tmp_path / "fs") as fs:
        (fs / "data").mkdir()
        with open_database(fs / "data" / "old.duckdb") as con:
            start_run(con, "run-1", manifest="ids.txt", refresh=False)
        read_only = tmp_path / f"ro-{uuid.uuid4().hex[:6]}"
        read_only.mkdir()
        _mount("--bind", str(fs / "data"), str(read_only))
        try:
            _mount("-o", "remount,bind,ro", str(read_only))
            for path, line in [
                (
                    read_only / "new.duckdb",
                    f"cannot open {read_only}/new.duckdb: Read-only file system",
                ),
                (
                    read_only / "old.duckdb",
                    f"cannot open {read_only}/old.duckdb: Read-only file system",
                ),
                (
                    read_only / "sub" / "new.duckdb",
                    f"cannot create {read_only}/sub: Read-only file system",
                ),
            ]:
                with pytest.raises(StorageError) as caught, open_database(path):
                    pass
                assert str(caught.value) == line
        finally:
            subprocess.run(["umount", str(read_only)], check=False)
