"""Detail responses → rows of ``creations`` and ``creation_outputs``."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from haiper_sync.api.models import CreationDetail
from haiper_sync.rows import CreationRow, OutputRow

_NUMERIC = re.compile(r"\d{9,13}(\.\d+)?")


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
