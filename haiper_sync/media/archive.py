"""Archiving a DuckDB file's media: plan, download in parallel, record each whole file."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from haiper_sync.api.network import Network
from haiper_sync.api.retry import RetryPolicy
from haiper_sync.errors import ArchiveUnavailable, HaiperSyncError, LinkExpired, MediaError
from haiper_sync.media.destination import Destination, open_destination
from haiper_sync.media.plan import MediaFile, is_expired, plan_files
from haiper_sync.media.policy import Bandwidth
from haiper_sync.media.transfer import Downloader, Sleep, Stored, build_media_client
from haiper_sync.rows import ErrorRecord, MediaRow
from haiper_sync.settings import Settings
from haiper_sync.store.connection import open_database
from haiper_sync.store.media import archived_count, media_to_archive, record_media
from haiper_sync.store.writes import insert_errors
from haiper_sync.summary import MediaCounts

# Fresh signed links of one creation, by (output_id, kind); output_id None for the cover.
Links = Mapping[tuple[str | None, str], str]
Refresher = Callable[[str], Awaitable[Links]]
STAGE = "media"
# Rows are written in batches: often enough that a killed run loses little, rarely enough
# that the DuckDB file is free for analysts between writes.
FLUSH_ROWS = 200
FLUSH_SECONDS = 2.0
PROGRESS_SECONDS = 0.25
# One write at a time from the archive's threads (rows, refreshed details): DuckDB's Python
# connections opened and closed at once on one file race on its Arrow scan (a CatalogException
# "python_arrow_scan does not exist"), and the writes are short.
WRITES = threading.Lock()


@dataclass(frozen=True)
class ArchiveProgress:
    """Where a run is: files finished or failed of the planned, bytes received so far."""

    files_total: int
    files_done: int
    files_failed: int
    bytes_received: int


Progress = Callable[[ArchiveProgress], None]


@dataclass(kw_only=True)
class ArchiveSummary(MediaCounts):
    """What one archive run did: the run summary's `MediaCounts`, and what it planned."""

    files_planned: int  # not archived when the run started
    files_skipped: int  # archived by an earlier run: not downloaded again


def _row(
    file: MediaFile,
    attempts: int,
    stored: Stored | None = None,
    stored_url: str | None = None,
    error: str | None = None,
) -> MediaRow:
    """A file's ``creation_media`` row: whole (``stored``) or failed (``error``)."""
    return MediaRow(
        creation_id=file.creation_id,
        output_id=file.output_id,
        kind=file.kind,
        source_url=file.source_url,
        stored_url=stored_url,
        bytes=stored.bytes if stored else None,
        sha256=stored.sha256 if stored else None,
        content_type=stored.content_type if stored else None,
        archived_at=datetime.now(UTC) if stored else None,
        attempts=attempts,
        last_error=error,
    )


@dataclass
class _Tally:
    done: int = 0
    failed: int = 0
    bytes_archived: int = 0
    bytes_received: int = 0
    refreshed: int = 0
    rows: list[MediaRow] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)


def links_of(
    creation_thumbnail: str | None, outputs: list[tuple[str, str | None, str | None]]
) -> dict[tuple[str | None, str], str]:
    """A creation's links by (output_id, kind), from its cover and (id, media, thumbnail)s."""
    links: dict[tuple[str | None, str], str] = {}
    for output_id, media_url, thumbnail_url in outputs:
        if media_url:
            links[(output_id, "media")] = media_url
        if thumbnail_url:
            links[(output_id, "thumbnail")] = thumbnail_url
    if creation_thumbnail:
        links[(None, "cover")] = creation_thumbnail
    return links


class _Archiver:
    def __init__(
        self,
        db_path: Path,
        destination: Destination,
        downloader: Downloader,
        *,
        settings: Settings,
        run_id: str | None,
        refresher: Refresher | None,
        progress: Progress | None,
        clock: Callable[[], float],
        total: int,
    ) -> None:
        self.db_path = db_path
        self.destination = destination
        self.downloader = downloader
        self.settings = settings
        self.run_id = run_id
        self.refresher = refresher
        self.progress = progress
        self.clock = clock
        self.total = total
        self.tally = _Tally()
        self.stopped: ArchiveUnavailable | None = None
        self._refreshes: dict[str, asyncio.Task[Links]] = {}
        self._flush_lock = asyncio.Lock()
        self._last_flush = time.monotonic()
        self._last_report = time.monotonic()

    def on_bytes(self, n: int) -> None:
        self.tally.bytes_received += n
        # A few reports a second while bytes flow: enough for a live MB/s, cheap per chunk.
        now = time.monotonic()
        if now - self._last_report >= PROGRESS_SECONDS:
            self._last_report = now
            self.report()

    def report(self) -> None:
        if self.progress is not None:
            t = self.tally
            self.progress(ArchiveProgress(self.total, t.done, t.failed, t.bytes_received))

    async def work(self, queue: asyncio.Queue[MediaFile]) -> None:
        while self.stopped is None:
            try:
                file = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                await self.archive_one(file)
            except ArchiveUnavailable as error:
                self.stopped = error
                return
            await self.maybe_flush()

    async def fresh(self, file: MediaFile, why: MediaError) -> MediaFile:
        """The file behind a fresh link; the creation's detail is fetched once per run."""
        if self.refresher is None:
            raise why
        task = self._refreshes.get(file.creation_id)
        if task is None:
            task = asyncio.ensure_future(self.refresher(file.creation_id))
            self._refreshes[file.creation_id] = task
            self.tally.refreshed += 1
        try:
            links = await asyncio.shield(task)
        except HaiperSyncError as error:
            raise MediaError(
                f"{file.label()}: {why}; fetching a fresh link failed: {error}",
                transient=True,
            ) from None
        url = links.get((file.output_id, file.kind))
        if not url:
            raise MediaError(f"{file.label()}: the fresh detail no longer has this file")
        return file.with_url(url)

    async def archive_one(self, file: MediaFile) -> None:
        attempts = [0]
        # One retry with a fresh link per file; the creation's detail is fetched once for all.
        refreshed = False
        try:
            if is_expired(file.url, self.clock()):
                expired = LinkExpired(f"{file.label()}: the link has expired")
                file, refreshed = await self.fresh(file, expired), True
            try:
                stored = await self.downloader.fetch(file, attempts)
            except LinkExpired as refused:
                if refreshed or self.refresher is None:
                    raise
                file = await self.fresh(file, refused)
                stored = await self.downloader.fetch(file, attempts)
        except MediaError as error:
            self.failed(file, error, attempts[0])
            return
        self.archived(file, stored, attempts[0])

    def archived(self, file: MediaFile, stored: Stored, attempts: int) -> None:
        t = self.tally
        t.done += 1
        t.bytes_archived += stored.bytes
        t.rows.append(_row(file, attempts, stored, self.destination.stored_url(stored.key)))
        self.report()

    def failed(self, file: MediaFile, error: MediaError, attempts: int) -> None:
        t = self.tally
        t.failed += 1
        t.rows.append(_row(file, attempts, error=str(error)))
        t.errors.append(
            ErrorRecord(
                creation_id=file.creation_id,
                stage=STAGE,
                message=str(error),
                http_status=error.http_status,
                deferred=error.transient,
            )
        )
        self.report()

    async def maybe_flush(self, force: bool = False) -> None:
        due = len(self.tally.rows) >= FLUSH_ROWS or (
            time.monotonic() - self._last_flush >= FLUSH_SECONDS
        )
        if not (force or due) or not (self.tally.rows or self.tally.errors):
            return
        async with self._flush_lock:
            rows, self.tally.rows = self.tally.rows, []
            errors, self.tally.errors = self.tally.errors, []
            self._last_flush = time.monotonic()
            if rows or errors:
                await asyncio.to_thread(self.write, rows, errors)

    def write(self, rows: list[MediaRow], errors: list[ErrorRecord]) -> None:
        with (
            WRITES,
            open_database(
                self.db_path, migrate_schema=False, timeout=self.settings.lock_timeout
            ) as con,
        ):
            con.execute("BEGIN")
            try:
                record_media(con, rows)
                if self.run_id is not None:
                    insert_errors(con, errors, self.run_id)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise


async def archive_media(
    db_path: str | Path,
    destination: str,
    *,
    settings: Settings | None = None,
    run_id: str | None = None,
    refresher: Refresher | None = None,
    progress: Progress | None = None,
    network: Network | None = None,
    http: httpx.AsyncClient | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.time,
    draw: Callable[[], float] = random.random,
) -> ArchiveSummary:
    """Archive every stored creation's media not archived yet into ``destination``.

    ``refresher(creation_id)`` returns fresh links when a link has expired or is refused; it is
    called at most once per creation per run. Per-file failures become ``creation_media`` rows
    (and ``sync_errors`` rows with stage ``media`` when ``run_id`` is given); a full disk or a
    refused bucket raises `ArchiveUnavailable` after recording what was archived. ``clock`` is
    wall time (links' ``Expires=``); ``sleep`` and ``draw`` drive backoff.
    """
    cfg = settings if settings is not None else Settings()
    path = Path(db_path)
    with open_database(path, timeout=cfg.lock_timeout) as con:
        pending = media_to_archive(con)
        skipped = archived_count(con)
    files = plan_files(pending)
    target = open_destination(destination)
    net = network or Network(backend=cfg.http_backend, proxy=cfg.proxy, ca_bundle=cfg.ca_bundle)
    client = http or build_media_client(
        net,
        connections=cfg.media_concurrency,
        connect_timeout=cfg.connect_timeout,
        read_timeout=cfg.read_timeout,
    )
    bandwidth = Bandwidth(cfg.media_bandwidth, time.monotonic) if cfg.media_bandwidth else None
    policy = RetryPolicy(max_attempts=cfg.max_attempts)
    archiver: _Archiver
    downloader = Downloader(
        client,
        target,
        max_bytes=cfg.media_max_bytes,
        policy=policy,
        sleep=sleep,
        draw=draw,
        bandwidth=bandwidth,
        on_bytes=lambda n: archiver.on_bytes(n),
    )
    archiver = _Archiver(
        path,
        target,
        downloader,
        settings=cfg,
        run_id=run_id,
        refresher=refresher,
        progress=progress,
        clock=clock,
        total=len(files),
    )
    queue: asyncio.Queue[MediaFile] = asyncio.Queue()
    for file in files:
        queue.put_nowait(file)
    try:
        workers = [archiver.work(queue) for _ in range(min(cfg.media_concurrency, len(files)))]
        await asyncio.gather(*workers)
    finally:
        try:
            await archiver.maybe_flush(force=True)
        finally:
            if http is None:
                await client.aclose()
    t = archiver.tally
    summary = ArchiveSummary(
        destination=target.base,
        files_planned=len(files),
        files_archived=t.done,
        bytes_archived=t.bytes_archived,
        files_failed=t.failed,
        files_skipped=skipped,
        files_not_archived=len(files) - t.done,
        links_refreshed=t.refreshed,
    )
    if archiver.stopped is not None:
        # What was archived before is recorded; the rest waits for a run with room.
        raise archiver.stopped
    return summary
