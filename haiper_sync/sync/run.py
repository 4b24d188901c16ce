"""The rules of a run that need no Prefect: its record, the in-flight window, the chunk writer,
the heap left out of the collector's scans, and when a run has too many errors to call it a
success."""

from __future__ import annotations

import gc
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

from haiper_sync.errors import DatabaseLocked, TooManyErrors
from haiper_sync.rows import ChunkRows
from haiper_sync.store.connection import open_database
from haiper_sync.store.set_aside import set_aside_chunk, write_set_aside
from haiper_sync.store.writes import write_chunk
from haiper_sync.summary import RunSummary

T = TypeVar("T")

# This many chunks are fetched ahead of the writer.
CHUNKS_IN_FLIGHT = 3


def new_run(manifest: str, refresh: bool, flow_run_id: str | None) -> RunSummary:
    """The record of a run about to start."""
    return RunSummary(
        run_id=uuid.uuid4().hex,
        manifest=manifest,
        refresh=refresh,
        started_at=datetime.now(UTC),
        flow_run_id=flow_run_id,
    )


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Leave the objects alive now out of the garbage collector's scans until the block ends.

    By the time a run sends its requests the process holds about a million long-lived objects
    (Prefect, pydantic, the imported modules). Every request makes short-lived garbage, and each
    full collection it triggers scanned them all again: 3 s of a 36 s run at 20,000 IDs, on the
    thread that sends the requests. Frozen objects are skipped; the block's end puts them back,
    unless they were frozen before it began (by whoever froze them).
    """
    was_frozen = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not was_frozen:
            gc.unfreeze()


def ahead(items: Iterable[T], depth: int = CHUNKS_IN_FLIGHT) -> Iterator[T]:
    """Yield ``items`` in order while keeping ``depth`` of them drawn ahead (submitted)."""
    waiting: deque[T] = deque()
    for item in items:
        waiting.append(item)
        if len(waiting) >= depth:
            yield waiting.popleft()
    while waiting:
        yield waiting.popleft()


class ChunkWriter:
    """Writes a run's chunks in order and keeps the run's summary.

    One writer per database, in the flow's process. A chunk that finds the file held by
    someone else past the lock timeout is set aside in ``<db>.set-aside/``; once that happened,
    the next writes wait only briefly (and set their chunk aside too) instead of stalling the
    whole run for the full timeout each.
    """

    BRIEF_WAIT = 1.0

    def __init__(
        self,
        db_path: str,
        summary: RunSummary,
        lock_timeout: float,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.db_path, self.summary, self.lock_timeout = db_path, summary, lock_timeout
        self._wait = lock_timeout
        self._warn = warn or logging.getLogger(__name__).warning

    def write(self, chunk_no: int, rows: ChunkRows) -> int:
        """Commit a chunk's rows (or set them aside); return how many IDs the chunk held."""
        try:
            with open_database(
                self.db_path, timeout=self._wait, on_wait=self._warn, migrate_schema=False
            ) as con:
                write_set_aside(con, self.db_path)
                counts = write_chunk(con, self.summary.run_id, rows)
            self._wait = self.lock_timeout
        except DatabaseLocked as locked:
            folder = set_aside_chunk(self.db_path, self.summary.run_id, chunk_no, rows)
            self._warn(f"{locked} Chunk {chunk_no} set aside in {folder} until the file is free.")
            counts = rows.counts
            self.summary.chunks_set_aside += 1
            self._wait = self.BRIEF_WAIT
        self.summary.add(counts)
        return len(rows.statuses)


def check_error_ratio(summary: RunSummary, max_error_ratio: float) -> None:
    """Raise `TooManyErrors` when more than ``max_error_ratio`` of the manifest's IDs errored.

    Of the manifest, not of the IDs this run asked about: a nightly rerun asks mostly about
    the unfinished and the unknown, and a few 404s among those are not a bad night.
    """
    total = summary.ids_in_manifest
    if total and summary.ids_errored / total > max_error_ratio:
        raise TooManyErrors(
            f"{summary.ids_errored} of {total} IDs errored ({summary.ids_errored / total:.0%}), "
            f"more than max_error_ratio {max_error_ratio:.0%} allows; see sync_errors"
        )
