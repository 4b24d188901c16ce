"""What a run shows in the Prefect UI: a progress artifact and a summary under a stable key."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)

from haiper_sync.progress import Progress, publish

SUMMARY_KEY = "haiper-sync-summary"
PROGRESS_KEY = "haiper-sync-progress"


class RunProgress:
    """Keeps the UI's progress artifact and in-process listeners up to date."""

    def __init__(self, run_id: str, total: int) -> None:
        self.run_id, self.total, self.done = run_id, total, 0
        self._artifact: UUID = create_progress_artifact(  # type: ignore[assignment]
            0.0 if total else 100.0, key=PROGRESS_KEY, description="IDs handled so far"
        )
        publish(Progress(run_id, 0, total))

    def advance(self, ids: int) -> None:
        """Count ``ids`` more IDs as handled."""
        self.done += ids
        percent = 100.0 * self.done / self.total if self.total else 100.0
        update_progress_artifact(self._artifact, percent)
        publish(Progress(self.run_id, self.done, self.total))


def publish_summary(summary: dict[str, Any], errors: list[dict[str, Any]]) -> None:
    """Create the run's summary artifact (markdown, key ``haiper-sync-summary``)."""
    started, finished = summary.get("started_at"), summary.get("finished_at")
    took = (finished - started).total_seconds() if started and finished else 0.0
    rows = [
        ("state", summary["state"]),
        ("IDs in manifest", summary["ids_in_manifest"]),
        ("rejected manifest entries", summary["ids_rejected"]),
        ("already finished (skipped)", summary["ids_skipped"]),
        ("status checked", summary["ids_checked"]),
        ("succeed", summary["ids_succeeded"]),
        ("failed", summary["ids_failed"]),
        ("still pending", summary["ids_pending"]),
        ("errored", summary["ids_errored"]),
        ("details fetched", summary["ids_fetched"]),
        ("creations inserted", summary["rows_inserted"]),
        ("creations updated", summary["rows_updated"]),
        ("requests", summary["requests"]),
        ("retries", summary["retries"]),
        ("duration (s)", f"{took:.1f}"),
    ]
    lines = [f"# haiper-sync run `{summary['run_id']}`", "", "| what | count |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    if summary.get("message"):
        lines += ["", f"**Message:** {summary['message']}"]
    if errors:
        lines += ["", "## Errors (sample)", "", "| stage | creation_id | HTTP | message |"]
        lines += ["|---|---|---|---|"]
        lines += [
            f"| {e['stage']} | `{e['creation_id']}` | {e['http_status'] or ''} | "
            f"{str(e['message']).replace('|', '/')[:160]} |"
            for e in errors
        ]
    create_markdown_artifact(
        "\n".join(lines), key=SUMMARY_KEY, description=f"{summary['manifest']} → sync summary"
    )
