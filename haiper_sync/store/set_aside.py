"""Chunks that could not be written because another process held the DuckDB file.

Rather than fail the run (and throw away requests already spent), a chunk whose write times
out is saved next to the database as Parquet files and written by the next write that gets
the file: later in the same run, or the next run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from haiper_sync.rows import ChunkRows, CreationRow, ErrorRecord, OutputRow, StatusRow, as_arrow
from haiper_sync.store import runs
from haiper_sync.store.writes import write_chunk
from haiper_sync.summary import RunCounts, RunSummary

# The ChunkRows field each Parquet file holds, and its row type.
_TABLES: dict[str, type[Any]] = {
    "creations": CreationRow,
    "outputs": OutputRow,
    "statuses": StatusRow,
    "errors": ErrorRecord,
}


def set_aside_dir(db_path: str | Path) -> Path:
    """Where a database's set-aside chunks wait: ``<db>.set-aside/``."""
    return Path(f"{db_path}.set-aside")


def spare_set_aside_dir(db_path: str | Path) -> Path:
    """Where set-aside work waits when the file's own folder has no room: the temp folder."""
    absolute = str(Path(db_path).absolute())
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "haiper-sync-set-aside" / f"{Path(db_path).name}-{digest}"


def _folders(db_path: str | Path) -> list[Path]:
    # `<db>.pending/` is where haiper-sync up to 0.1 set chunks aside: still written, once.
    return [set_aside_dir(db_path), spare_set_aside_dir(db_path), Path(f"{db_path}.pending")]


def _publish(db_path: str | Path, name: str, write: Any) -> Path:
    try:
        return _publish_in(set_aside_dir(db_path), name, write)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise
        # The disk that is full (or read-only) is the file's: a run's end, at least, must
        # still be kept for the next run to record.
        return _publish_in(spare_set_aside_dir(db_path), name, write)


def _publish_in(base: Path, name: str, write: Any) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".partial-{uuid.uuid4().hex}"
    try:
        staging.mkdir()
        write(staging)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    final = base / f"{time.time_ns():020d}-{name}"
    # A rename is atomic: a crash leaves a .partial folder, never half a chunk to ingest.
    os.replace(staging, final)
    return final


def set_aside_chunk(db_path: str | Path, run_id: str, chunk_no: int, rows: ChunkRows) -> Path:
    """Set a chunk's rows aside for a later write; return the folder."""

    def write(folder: Path) -> None:
        for name, row_type in _TABLES.items():
            pq.write_table(as_arrow(getattr(rows, name), row_type), folder / f"{name}.parquet")
        meta = {"run_id": run_id, "chunk_no": chunk_no, "counts": rows.counts.counts()}
        (folder / "meta.json").write_text(json.dumps(meta))

    return _publish(db_path, f"{run_id}-chunk-{chunk_no:05d}", write)


def set_aside_run_end(
    db_path: str | Path, summary: RunSummary, state: str, message: str | None
) -> Path:
    """Set a run's end aside for a later write (with its start, in case it never got a row)."""

    def write(folder: Path) -> None:
        meta = {
            "run_id": summary.run_id,
            "start": summary.start() | {"started_at": summary.started_at.isoformat()},
            "end": {"state": state, "message": message},
        }
        (folder / "meta.json").write_text(json.dumps(meta))

    return _publish(db_path, f"{summary.run_id}-end", write)


def set_aside_waiting(db_path: str | Path) -> list[Path]:
    """Set-aside chunks and run ends still to be written, oldest first."""
    return sorted(
        p for base in _folders(db_path) if base.exists() for p in base.glob("[0-9]*") if p.is_dir()
    )


def write_set_aside(con: duckdb.DuckDBPyConnection, db_path: str | Path) -> int:
    """Write every set-aside chunk and run end (each in its own transaction); return how many.

    Each is deleted once written, and the folder with the last one.
    """
    done = 0
    for folder in set_aside_waiting(db_path):
        meta = json.loads((folder / "meta.json").read_text())
        if "end" in meta:
            if "start" in meta:
                start = meta["start"] | {
                    "started_at": datetime.fromisoformat(meta["start"]["started_at"])
                }
                runs.ensure_run(con, meta["run_id"], **start)
            runs.finish_run(con, meta["run_id"], **meta["end"])
        else:
            parts = {
                name: [cls(**row) for row in pq.read_table(folder / f"{name}.parquet").to_pylist()]
                for name, cls in _TABLES.items()
            }
            write_chunk(con, meta["run_id"], ChunkRows(**parts, counts=RunCounts(**meta["counts"])))
        shutil.rmtree(folder)
        done += 1
    for base in _folders(db_path):
        # Only an empty folder goes: a `.partial-*` being written by another process stays.
        with contextlib.suppress(OSError):
            base.rmdir()
    return done
