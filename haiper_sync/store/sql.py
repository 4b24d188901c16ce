"""Small helpers for running SQL on a DuckDB connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The single value of a one-row query (fully fetched: DuckDB refuses new work otherwise)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def sql_literal(text: str | Path) -> str:
    """``text`` as a SQL string literal, quotes and all: ``it's`` → ``'it''s'``."""
    return "'" + str(text).replace("'", "''") + "'"


def duckdb_message(error: BaseException) -> str:
    """DuckDB's message on one line, without the ``LINE 1: ... ^`` pointer under it."""
    paragraph = str(error).strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines() if line.strip())


def records(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every row of an executed query as a dict keyed by column name."""
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
