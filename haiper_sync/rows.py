"""Every row type a sync writes, and the Arrow schemas derived from them (one source for both).

The fetch stage produces them, the store writes them, set-aside chunks are Parquet files of
them; none of those places spells out a column list again.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from haiper_sync.summary import RunCounts


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


@dataclass(frozen=True)
class StatusRow:
    """What one run learned about one ID's status (``status`` None: no answer this time)."""

    creation_id: str
    status: str | None
    progress: float | None
    checked_at: datetime | None
    error: str | None
    not_found: bool = False  # the check got a 404


@dataclass(frozen=True)
class ErrorRecord:
    """Why one ID could not be synced at one stage (becomes a ``sync_errors`` row)."""

    creation_id: str
    stage: str  # manifest | status | detail | parse | media
    message: str
    http_status: int | None = None
    code: str | None = None
    raw_body: str | None = None
    deferred: bool = False  # transient: the next run tries again


@dataclass(frozen=True)
class MediaRow:
    """One row of ``creation_media``: one attempt's outcome for one file.

    ``bytes`` and ``sha256`` are set only once the whole object is at ``stored_url``.
    ``source_url`` has no query string: a signed link's signature is a credential.
    """

    creation_id: str
    output_id: str | None  # None for a creation's cover
    kind: str  # media | thumbnail | cover
    source_url: str | None
    stored_url: str | None
    bytes: int | None
    sha256: str | None
    content_type: str | None
    archived_at: datetime | None
    attempts: int
    last_error: str | None


@dataclass
class ChunkRows:
    """Everything one chunk writes, in one transaction."""

    creations: list[CreationRow] = field(default_factory=list)
    outputs: list[OutputRow] = field(default_factory=list)
    statuses: list[StatusRow] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    counts: RunCounts = field(default_factory=RunCounts)


_ARROW_TYPES: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    datetime: pa.timestamp("us", tz="UTC"),
}


def _derive(row_type: type[Any]) -> pa.Schema:
    hints = typing.get_type_hints(row_type)
    columns = []
    for column in dataclasses.fields(row_type):
        hint = hints[column.name]
        if isinstance(hint, types.UnionType):  # X | None
            hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        columns.append((column.name, _ARROW_TYPES[hint]))
    return pa.schema(columns)


_SCHEMAS = {row: _derive(row) for row in (CreationRow, OutputRow, StatusRow, ErrorRecord, MediaRow)}


def arrow_schema(row_type: type[Any]) -> pa.Schema:
    """The Arrow schema of a row type: its fields, in order, with their types."""
    return _SCHEMAS[row_type]


def as_arrow(rows: list[Any], row_type: type[Any]) -> pa.Table:
    """Rows of ``row_type`` → an Arrow table (the bulk path into DuckDB and Parquet)."""
    schema = arrow_schema(row_type)
    columns = {name: [getattr(row, name) for row in rows] for name in schema.names}
    return pa.table(columns, schema=schema)
