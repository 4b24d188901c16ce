"""Detail responses → rows of ``creations`` and ``creation_outputs``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from haiper_sync.models import CreationDetail

_NUMERIC = re.compile(r"\d{9,13}(\.\d+)?")


@dataclass(frozen=True)
class CreationRow:
    """One row of ``creations``."""

    creation_id: str
    user_id: str | None
    username: str | None
    avatar: str | None
    type: str | None
    input_type: str | None
    output_type: str | None
    prompt: str | None
    negative_prompt: str | None
    create_time: datetime | None
    update_time: datetime | None
    create_time_raw: str | None
    update_time_raw: str | None
    status: str | None
    video_url: str | None
    thumbnail_url: str | None
    fps: float | None
    width: int | None
    height: int | None
    like_count: int | None
    is_like: bool | None
    collects_count: int | None
    is_collect: bool | None
    output_count: int
    notes: str | None
    raw_json: str
    synced_at: datetime
    run_id: str


@dataclass(frozen=True)
class OutputRow:
    """One row of ``creation_outputs``."""

    creation_id: str
    output_id: str
    position: int
    media_url: str | None
    thumbnail_url: str | None


def parse_timestamp(value: str | None) -> datetime | None:
    """Parse an API timestamp (ISO 8601, or epoch seconds/milliseconds); None if unreadable.

    The contract leaves the format open; naive times are taken as UTC.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _NUMERIC.fullmatch(text):
        number = float(text)
        seconds = number / 1000 if number > 1e11 else number
        return datetime.fromtimestamp(seconds, UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def normalize_detail(
    creation_id: str, detail: CreationDetail, raw_json: str, synced_at: datetime, run_id: str
) -> tuple[CreationRow, list[OutputRow]]:
    """Flatten one detail into its creation row and output rows, keyed by the requested ID."""
    notes = list(detail.drift)
    if detail.creation_id is not None and detail.creation_id != creation_id:
        # The requested ID stays the key: it is the one the manifest and the status speak of.
        notes.append(f"creation_id mismatch: body says {detail.creation_id!r}")
    settings = detail.settings
    commits = detail.commits
    create_time = parse_timestamp(detail.create_time)
    update_time = parse_timestamp(detail.update_time)
    if detail.create_time and create_time is None:
        notes.append("create_time: unreadable timestamp kept raw only")
    if detail.update_time and update_time is None:
        notes.append("update_time: unreadable timestamp kept raw only")
    outputs = _outputs(creation_id, detail, notes)
    row = CreationRow(
        creation_id=creation_id,
        user_id=detail.user_id,
        username=detail.username,
        avatar=detail.avatar,
        type=detail.type,
        input_type=detail.input_type,
        output_type=detail.output_type,
        prompt=detail.prompt,
        negative_prompt=detail.negative_prompt,
        create_time=create_time,
        update_time=update_time,
        create_time_raw=detail.create_time,
        update_time_raw=detail.update_time,
        status=detail.status,
        video_url=detail.video_url,
        thumbnail_url=detail.thumbnail_url,
        fps=settings.fps if settings else None,
        width=settings.width if settings else None,
        height=settings.height if settings else None,
        like_count=commits.like_count if commits else None,
        is_like=commits.is_like if commits else None,
        collects_count=commits.collects_count if commits else None,
        is_collect=commits.is_collect if commits else None,
        output_count=len(outputs),
        notes="; ".join(notes) or None,
        raw_json=raw_json,
        synced_at=synced_at,
        run_id=run_id,
    )
    return row, outputs


def _outputs(creation_id: str, detail: CreationDetail, notes: list[str]) -> list[OutputRow]:
    rows: list[OutputRow] = []
    seen: set[str] = set()
    for position, output in enumerate(detail.outputs or []):
        # An output without an id still deserves a row; its position makes a stable key.
        output_id = output.id or f"#{position}"
        if output_id in seen:
            notes.append(f"outputs: duplicate id {output_id!r} at position {position} dropped")
            continue
        seen.add(output_id)
        rows.append(
            OutputRow(creation_id, output_id, position, output.media_url, output.thumbnail_url)
        )
    return rows


def as_columns(rows: list[Any], names: list[str]) -> dict[str, list[Any]]:
    """Dataclass rows → column lists (the shape Arrow tables are built from)."""
    return {name: [getattr(row, name) for row in rows] for name in names}
