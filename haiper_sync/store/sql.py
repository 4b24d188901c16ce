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


def records(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every row of an executed query as a dict keyed by column name."""
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
