"""What a run shows in the Prefect UI: a progress artifact and a summary under a stable key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)

from haiper_sync.progress import Progress, publish
from haiper_sync.summary import RunSummary

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


def publish_summary(summary: RunSummary, errors: Sequence[Mapping[str, Any]]) -> None:
    """Create the run's summary artifact (markdown, key ``haiper-sync-summary``)."""
    create_markdown_artifact(
        summary.markdown(errors), key=SUMMARY_KEY, description=f"{summary.manifest} → sync summary"
    )
