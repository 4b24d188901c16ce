"""The run's Prefect-free rules: the in-flight window, the chunk writer, the frozen heap, the
error ratio."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from haiper_sync.errors import TooManyErrors
from haiper_sync.rows import ChunkRows, StatusRow
from haiper_sync.store import connection, runs
from haiper_sync.store.set_aside import set_aside_waiting
from haiper_sync.summary import RunCounts, RunSummary
from haiper_sync.sync.run import ChunkWriter, ahead, check_error_ratio, frozen_heap, new_run

# Holds the DuckDB file (as an analyst's shell does) until its standard input closes.
HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("holding", flush=True)
sys.stdin.read()
"""


def chunk(ids: list[str]) -> ChunkRows:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return ChunkRows(
        statuses=[StatusRow(i, "pending", 0.0, now, None) for i in ids],
        counts=RunCounts(ids_checked=len(ids), ids_pending=len(ids), requests=len(ids)),
    )


@pytest.fixture
def started(tmp_path: Path) -> tuple[str, RunSummary]:
    db = str(tmp_path / "w.duckdb")
    summary = new_run("m.txt", False, None)
    with connection.open_database(db) as con:
        runs.start_run(con, summary.run_id, manifest="m.txt", refresh=False)
    return db, summary


@pytest.fixture
def held(started: tuple[str, RunSummary]) -> Iterator[subprocess.Popen[str]]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, started[0]],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    yield holder
    holder.kill()
    holder.wait()


def test_ahead_keeps_depth_drawn_and_yields_in_order() -> None:
    drawn: list[int] = []

    def items() -> Iterator[int]:
        for n in range(5):
            drawn.append(n)
            yield n

    got = []
    for item in ahead(items(), depth=3):
        got.append((item, len(drawn)))
    assert got == [(0, 3), (1, 4), (2, 5), (3, 5), (4, 5)]


def test_the_writer_commits_a_chunk_and_counts_it(started: tuple[str, RunSummary]) -> None:
    db, summary = started
    writer = ChunkWriter(db, summary, lock_timeout=5.0)
    assert writer.write(0, chunk(["a", "b"])) == 2
    assert (summary.ids_checked, summary.requests, summary.chunks_set_aside) == (2, 2, 0)
    with connection.open_database(db, read_only=True) as con:
        assert runs.fetch_run(con, summary.run_id).ids_checked == 2


def test_a_held_file_sets_the_chunk_aside_and_the_next_write_brings_it_in(
    started: tuple[str, RunSummary], held: subprocess.Popen[str]
) -> None:
    db, summary = started
    warnings: list[str] = []
    writer = ChunkWriter(db, summary, lock_timeout=0.3, warn=warnings.append)
    assert writer.write(0, chunk(["a", "b"])) == 2
    assert summary.chunks_set_aside == 1 and summary.ids_checked == 2  # counted, not lost
    assert len(set_aside_waiting(db)) == 1
    assert any("set aside" in w and "locked by" in w for w in warnings)
    # Once a write had to wait in vain, the next ones wait only briefly.
    assert writer._wait == ChunkWriter.BRIEF_WAIT
    assert held.stdin is not None
    held.stdin.close()
    held.wait(timeout=10)
    writer.write(1, chunk(["c"]))
    assert set_aside_waiting(db) == []
    with connection.open_database(db, read_only=True) as con:
        assert runs.fetch_run(con, summary.run_id).ids_checked == 3
        assert con.execute("SELECT count(*) FROM creation_status").fetchall() == [(3,)]
    assert writer._wait == 0.3


@pytest.mark.parametrize(
    ("errored", "in_manifest", "ratio", "fails"),
    [(2, 10, 0.2, False), (3, 10, 0.2, True), (0, 0, 0.0, False), (1, 10, 0.0, True)],
)
def test_the_error_ratio_is_of_the_manifest(
    errored: int, in_manifest: int, ratio: float, fails: bool
) -> None:
    summary = new_run("m", False, None)
    summary.add(RunCounts(ids_errored=errored, ids_in_manifest=in_manifest))
    if fails:
        with pytest.raises(TooManyErrors, match=f"{errored} of {in_manifest} IDs errored"):
            check_error_ratio(summary, ratio)
    else:
        check_error_ratio(summary, ratio)


class Node:
    """An object in a reference cycle: only the garbage collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_the_heap_is_frozen_for_the_block_and_given_back_after() -> None:
    gc.unfreeze()  # whatever this process froze before, so that giving back is seen
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > 0  # everything alive when the block began
        garbage = weakref.ref(Node())
        gc.collect()
        assert garbage() is None  # made in the block: collected as usual
        assert gc.get_freeze_count() == frozen
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_before_the_block_stays_frozen_after_it() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with frozen_heap():
            pass
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()
