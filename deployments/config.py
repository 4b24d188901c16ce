"""Read the deployments of ``prefect.yaml`` so other entry points reuse its settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = REPO_ROOT / "prefect.yaml"
WORK_POOL = "haiper-sync"


@dataclass(frozen=True)
class ScheduleSpec:
    """One cron schedule of a deployment."""

    cron: str
    timezone: str | None = None
    active: bool = True


@dataclass(frozen=True)
class DeploymentSpec:
    """The parts of a ``prefect.yaml`` deployment that ``flow.serve`` can use too."""

    name: str
    entrypoint: str
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[ScheduleSpec] = field(default_factory=list)
    concurrency_limit: int | None = None
    work_pool: str | None = None


def load_deployments(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    """The deployments declared in ``path`` (``prefect.yaml`` at the repository root)."""
    document = yaml.safe_load(path.read_text())
    return [_spec(raw) for raw in document.get("deployments") or []]


def _spec(raw: dict[str, Any]) -> DeploymentSpec:
    schedules = [
        ScheduleSpec(cron=s["cron"], timezone=s.get("timezone"), active=s.get("active", True))
        for s in raw.get("schedules") or []
    ]
    limit = raw.get("concurrency_limit")
    if isinstance(limit, dict):  # the long form: {limit: 1, collision_strategy: ...}
        limit = limit.get("limit")
    return DeploymentSpec(
        name=raw["name"],
        entrypoint=raw["entrypoint"],
        description=raw.get("description"),
        tags=list(raw.get("tags") or []),
        parameters=dict(raw.get("parameters") or {}),
        schedules=schedules,
        concurrency_limit=limit,
        work_pool=(raw.get("work_pool") or {}).get("name"),
    )
