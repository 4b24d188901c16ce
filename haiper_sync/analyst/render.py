"""Rendering query results and summaries for people and for other programs."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

Format = Literal["table", "csv", "json", "markdown"]
# The widest a table cell gets; longer values end in "…".
MAX_CELL = 60


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: Format = "table") -> str:
    """Render a result set as an aligned table, CSV, JSON (list of objects) or Markdown."""
    if fmt == "json":
        records = [dict(zip(columns, map(_jsonable, row), strict=True)) for row in rows]
        return json.dumps(records, indent=2, default=str)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_text(v) for v in row] for row in rows])
        return buffer.getvalue().rstrip("\n")
    cells = [[_text(v).replace("\n", " ") for v in row] for row in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        return "\n".join(lines)
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, min(len(c), MAX_CELL)) for w, c in zip(widths, row, strict=True)]

    def cut(value: str) -> str:
        # A cut value says so; --format csv or json shows it whole.
        return value if len(value) <= MAX_CELL else value[: MAX_CELL - 1] + "…"

    def line(values: Sequence[str]) -> str:
        return "  ".join(cut(v).ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    return "\n".join(out)
