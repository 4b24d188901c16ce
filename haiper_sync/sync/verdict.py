"""When every request of a run got the same refusal, that refusal is the run's story.

``http://`` to a TLS port, a proxy's error page, an API path that does not exist: each ID then
errors with the same answer, and "20 of 20 IDs errored" hides the one line that says why.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from haiper_sync.store.runs import error_answers

# Enough of a body's first line to recognise it, short enough for a one-line message.
MAX_LINE = 120
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class ErrorAnswer:
    """One group of a run's ``sync_errors``: the same HTTP answer, ``count`` times."""

    http_status: int | None
    raw_body: str | None
    message: str
    deferred: bool
    count: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ErrorAnswer:
        """From a row of `haiper_sync.store.runs.error_answers`."""
        return cls(
            http_status=row["http_status"],
            raw_body=row["raw_body"],
            message=row["message"],
            deferred=bool(row["deferred"]),
            count=int(row["count"]),
        )


@dataclass(frozen=True)
class CommonAnswer:
    """The one answer every request of a run got: its status and its body's first line."""

    http_status: int
    first_line: str
    count: int

    def __str__(self) -> str:
        return f"every request was answered HTTP {self.http_status}: {self.first_line}"


def first_line(body: str | None, message: str) -> str:
    """The first line of text of ``body`` (HTML tags dropped), cut to `MAX_LINE` characters.

    With no body, the message's words after the status (``Bad Request``), without the URL.
    """
    text = html.unescape(_TAG.sub(" ", body or ""))
    line = next((" ".join(part.split()) for part in text.splitlines() if part.strip()), "")
    if not line:
        line = message.rpartition(": ")[2].strip() or message
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def common_answer(
    groups: Iterable[ErrorAnswer], *, answered: int = 0, errors: int | None = None
) -> CommonAnswer | None:
    """The answer all of a run's errors share, if they share one that no retry would change.

    None when the run has no errors, when ``answered`` IDs got a usable answer, when an error
    had no HTTP answer or would be retried (``deferred``), when the answers differ, or when
    the ``groups`` cover fewer than ``errors`` error rows (a limit cut some off).
    """
    if answered:
        return None
    found: dict[tuple[int, str], int] = {}
    total = 0
    for group in groups:
        if group.http_status is None or group.deferred:
            return None
        key = (group.http_status, first_line(group.raw_body, group.message))
        found[key] = found.get(key, 0) + group.count
        total += group.count
    if len(found) != 1 or (errors is not None and total < errors):
        return None
    ((status, line), count) = next(iter(found.items()))
    return CommonAnswer(status, line, count)


def run_common_answer(con: duckdb.DuckDBPyConnection, run_id: str) -> CommonAnswer | None:
    """`common_answer` of the run ``run_id`` as its ``sync_errors`` rows record it."""
    rows = error_answers(con, run_id)
    if not rows:
        return None
    return common_answer(
        (ErrorAnswer.from_row(row) for row in rows),
        answered=int(rows[0]["answered"]),
        errors=int(rows[0]["errors"]),
    )
