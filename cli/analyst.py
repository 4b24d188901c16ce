"""The analyst's commands: query, status, export (read-only; Prefect is never imported)."""

from __future__ import annotations

import argparse
from typing import Any

from cli.output import fail
from haiper_sync.analyst import queries
from haiper_sync.analyst.render import render
from haiper_sync.errors import HaiperSyncError
from haiper_sync.settings import load_settings


def _db(args: argparse.Namespace) -> str:
    return str(args.db or load_settings().db)


def cmd_query(args: argparse.Namespace) -> int:
    """``haiper-sync query "SQL"``."""
    try:
        with queries.open_readonly(_db(args), timeout=args.wait) as con:
            result = queries.run_query(con, args.sql)
    except HaiperSyncError as error:
        return fail(str(error))
    if result.columns:
        print(render(result.columns, result.rows, args.format))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """``haiper-sync status``."""
    db = _db(args)
    try:
        with queries.open_readonly(db, timeout=args.wait) as con:
            report = queries.build_status(con, db)
    except HaiperSyncError as error:
        return fail(str(error))
    print(queries.format_status(report))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``haiper-sync export``."""
    try:
        with queries.open_readonly(_db(args), timeout=args.wait) as con:
            files = queries.export(con, args.out, args.format)
    except HaiperSyncError as error:
        return fail(str(error))
    width = max((len(str(f.path)) for f in files), default=0)
    print(f"wrote {len(files)} {args.format} files to {args.out}")
    for f in files:
        print(f"  {str(f.path).ljust(width)}  {f.rows:>8} rows  ({f.kind})")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="DuckDB file (default: $HAIPER_DB or haiper.duckdb)")
    parser.add_argument(
        "--wait",
        type=float,
        default=queries.DEFAULT_WAIT,
        metavar="SECONDS",
        help=f"how long to wait while a sync holds the file (default {queries.DEFAULT_WAIT:g})",
    )


def add_commands(commands: Any) -> None:
    """Register the analyst's subcommands on the ``haiper-sync`` parser."""
    query = commands.add_parser("query", help="run one SQL query on the database, read-only")
    query.add_argument("sql", help='e.g. "SELECT * FROM daily_creations"')
    query.add_argument(
        "--format",
        choices=["table", "csv", "json", "markdown"],
        default="table",
        help="output format (default: table)",
    )
    _common(query)
    query.set_defaults(func=cmd_query)

    status = commands.add_parser("status", help="what is in the database: counts, last run")
    _common(status)
    status.set_defaults(func=cmd_status)

    export = commands.add_parser("export", help="write every table and view to files")
    export.add_argument(
        "--format", choices=["parquet", "csv"], required=True, help="file format: parquet or csv"
    )
    export.add_argument("--out", required=True, help="directory (created if missing)")
    _common(export)
    export.set_defaults(func=cmd_export)
