"""A run's summary: one typed record behind the ``sync_runs`` row, the CLI, the artifact, status."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass
class RunCounts:
    """The counters a run accumulates, plan and chunk by chunk (columns of ``sync_runs``)."""

    ids_in_manifest: int = 0
    ids_rejected: int = 0
    ids_skipped: int = 0
    ids_not_due: int = 0
    ids_checked: int = 0
    ids_fetched: int = 0
    ids_succeeded: int = 0
    ids_failed: int = 0
    ids_pending: int = 0
    ids_errored: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    requests: int = 0
    retries: int = 0

    def add(self, other: RunCounts) -> None:
        """Add another chunk's (or the plan's) counters to these."""
        for name in RUN_COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def counts(self) -> dict[str, int]:
        """The counters alone, by column name."""
        return {name: getattr(self, name) for name in RUN_COUNTERS}


RUN_COUNTERS = tuple(f.name for f in dataclasses.fields(RunCounts))


@dataclass
class MediaCounts:
    """What a run's media archive did: files and bytes archived, failed, still missing."""

    destination: str
    files_archived: int = 0
    bytes_archived: int = 0
    files_failed: int = 0
    files_not_archived: int = 0
    links_refreshed: int = 0

    def line(self) -> str:
        """One line: where the files went and how many."""
        return (
            f"{self.files_archived:,} files ({self.bytes_archived / 1e6:,.1f} MB) archived to "
            f"{self.destination}, {self.files_failed:,} failed, {self.files_not_archived:,} not "
            f"archived yet, {self.links_refreshed:,} links refreshed"
        )


@dataclass(kw_only=True)
class RunSummary(RunCounts):
    """What one sync run did: its identity, its end, and its counters."""

    run_id: str
    manifest: str
    started_at: datetime
    refresh: bool = False
    flow_run_id: str | None = None
    state: str = "running"
    finished_at: datetime | None = None
    message: str | None = None
    # Not in sync_runs: how much of this run waited in <db>.set-aside/ for the file.
    chunks_set_aside: int = 0
    end_set_aside: bool = False
    # Not in sync_runs either: the media archive's share of the run (creation_media has it).
    media: MediaCounts | None = None

    def start(self) -> dict[str, Any]:
        """How the run started, as `store.runs.start_run` takes it."""
        return {
            "manifest": self.manifest,
            "refresh": self.refresh,
            "flow_run_id": self.flow_run_id,
            "started_at": self.started_at,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunSummary:
        """From a ``sync_runs`` row (a dict of its columns); unknown columns are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})

    @property
    def seconds(self) -> float | None:
        """How long the run took (None while running)."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def table(self) -> list[tuple[str, str]]:
        """(what, value) pairs: the one list the text and the Markdown renderings show."""
        rows = [
            ("state", self.state),
            ("IDs in manifest", self.ids_in_manifest),
            ("rejected manifest entries", self.ids_rejected),
            ("already finished (skipped)", self.ids_skipped),
            ("not due yet (skipped)", self.ids_not_due),
            ("status checked", self.ids_checked),
            ("succeed", self.ids_succeeded),
            ("failed", self.ids_failed),
            ("still pending", self.ids_pending),
            ("errored", self.ids_errored),
            ("details fetched", self.ids_fetched),
            ("creations inserted", self.rows_inserted),
            ("creations updated", self.rows_updated),
            ("requests", self.requests),
            ("retries", self.retries),
            ("duration (s)", f"{self.seconds:.1f}" if self.seconds is not None else "-"),
        ]
        if self._set_aside():
            rows.append(("set aside in <db>.set-aside/", self._set_aside()))
        if self.media is not None:
            m = self.media
            rows += [
                ("media archived to", m.destination),
                ("media files archived", m.files_archived),
                ("media MB archived", f"{m.bytes_archived / 1e6:,.1f}"),
                ("media files failed", m.files_failed),
                ("media files not archived yet", m.files_not_archived),
                ("media links refreshed", m.links_refreshed),
            ]
        return [(name, str(value)) for name, value in rows]

    def _set_aside(self) -> str:
        if not (self.chunks_set_aside or self.end_set_aside):
            return ""
        return f"{self.chunks_set_aside} chunk(s)" + (
            ", the run's end" if self.end_set_aside else ""
        )

    def headline(self) -> str:
        """One line: state and the counts an operator looks at first."""
        return (
            f"run {self.run_id} {self.state}: {self.ids_checked} checked, {self.ids_fetched} "
            f"fetched, {self.ids_failed} failed, {self.ids_pending} still pending, "
            f"{self.ids_errored} errors, {self.requests} requests"
        )

    def text(self) -> str:
        """A few human lines (CLI and ``haiper-sync status``)."""
        took = f" in {self.seconds:.1f} s" if self.seconds is not None else ""
        lines = [
            f"run {self.run_id} {self.state}{took}",
            f"  manifest  {self.manifest}: {self.ids_in_manifest} IDs, "
            f"{self.ids_rejected} rejected, {self.ids_skipped} already finished"
            + (f", {self.ids_not_due} not due yet" if self.ids_not_due else ""),
            f"  checked   {self.ids_checked} answered ({self.ids_succeeded} succeed, "
            f"{self.ids_failed} failed, {self.ids_pending} still pending)",
            f"  fetched   {self.ids_fetched} details ({self.rows_inserted} new, "
            f"{self.rows_updated} updated)",
            f"  errors    {self.ids_errored} IDs (see table sync_errors)",
            f"  requests  {self.requests} ({self.retries} retries)",
        ]
        if self._set_aside():
            lines.append(
                f"  set aside {self._set_aside()} (the next write that gets the file writes them)"
            )
        if self.media is not None:
            lines.append(f"  media     {self.media.line()}")
        if self.message:
            lines.append(f"  message   {self.message}")
        return "\n".join(lines)

    def markdown(self, errors: Sequence[Mapping[str, Any]] = (), database: str = "") -> str:
        """The Prefect artifact: where the rows went, the counts, the message, some errors."""
        lines = [f"# haiper-sync run `{self.run_id}`", ""]
        if database:
            lines += [f"DuckDB file: `{database}`", ""]
        lines += ["| what | count |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in self.table()]
        if self.message:
            lines += ["", f"**Message:** {self.message}"]
        if errors:
            lines += ["", "## Errors (sample)", "", "| stage | creation_id | HTTP | message |"]
            lines += ["|---|---|---|---|"]
            lines += [
                f"| {e['stage']} | `{e['creation_id']}` | {e['http_status'] or ''} | "
                f"{str(e['message']).replace('|', '/')[:160]} |"
                for e in errors
            ]
        return "\n".join(lines)


def human_duration(seconds: float) -> str:
    """``42 s``, ``17 min``, ``5 h 3 min``, ``31 d 4 h``: precise enough to judge an age."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
