"""Chunks that could not be written because another process held the DuckDB file.

Rather than fail the run (and throw away requests already spent), a chunk whose write times
out is saved next to the database as Parquet files and written by the next write that gets
the file: later in the same run, or the next run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from haiper_sync.rows import ChunkRows, CreationRow, ErrorRecord, OutputRow, StatusRow, as_arrow
from haiper_sync.store import runs
from haiper_sync.store.writes import write_chunk
from haiper_sync.summary import RunCounts

# The ChunkRows field each Parquet file holds, and its row type.
_TABLES: dict[str, type[Any]] = {
    "creations": CreationRow,
    "outputs": OutputRow,
    "statuses": StatusRow,
    "errors": ErrorRecord,
}


def spill_dir(db_path: str | Path) -> Path:
    """Where a database's unwritten chunks wait: ``<db>.pending/``."""
    return Path(f"{db_path}.pending")


def _publish(db_path: str | Path, name: str, write: Any) -> Path:
    base = spill_dir(db_path)
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".partial-{uuid.uuid4().hex}"
    staging.mkdir()
    write(staging)
    final = base / f"{time.time_ns():020d}-{name}"
    # A rename is atomic: a crash leaves a .partial folder, never half a chunk to ingest.
    os.replace(staging, final)
    return final


def spill_chunk(db_path: str | Path, run_id: str, chunk_no: int, rows: ChunkRows) -> Path:
    """Save a chunk's rows for a later write; return the folder."""

    def write(folder: Path) -> None:
        for name, row_type in _TABLES.items():
            pq.write_table(as_arrow(getattr(rows, name), row_type), folder / f"{name}.parquet")
        meta = {"run_id": run_id, "chunk_no": chunk_no, "counts": rows.counts.counts()}
        (folder / "meta.json").write_text(json.dumps(meta))

    return _publish(db_path, f"{run_id}-chunk-{chunk_no:05d}", write)


def spill_run_end(db_path: str | Path, run_id: str, state: str, message: str | None) -> Path:
    """Save a run's final state for a later write."""

    def write(folder: Path) -> None:
        meta = {"run_id": run_id, "end": {"state": state, "message": message}}
        (folder / "meta.json").write_text(json.dumps(meta))

    return _publish(db_path, f"{run_id}-end", write)


def pending_spills(db_path: str | Path) -> list[Path]:
    """Spilled chunks and run ends still to be written, oldest first."""
    base = spill_dir(db_path)
    return sorted(p for p in base.glob("[0-9]*") if p.is_dir()) if base.exists() else []


def ingest_spills(con: duckdb.DuckDBPyConnection, db_path: str | Path) -> int:
    """Write every pending spill (each in its own transaction) and delete it; return how many."""
    done = 0
    for folder in pending_spills(db_path):
        meta = json.loads((folder / "meta.json").read_text())
        if "end" in meta:
            runs.finish_run(con, meta["run_id"], **meta["end"])
        else:
            parts = {
                name: [cls(**row) for row in pq.read_table(folder / f"{name}.parquet").to_pylist()]
                for name, cls in _TABLES.items()
            }
            write_chunk(con, meta["run_id"], ChunkRows(**parts, counts=RunCounts(**meta["counts"])))
        shutil.rmtree(folder)
        done += 1
    return done
