"""Checks before Prefect starts: each mistake is one line naming its flag or variable."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
from pydantic import ValidationError

from haiper_sync.errors import ConfigError, ForeignDatabase
from haiper_sync.settings import SECRET_BLOCK, Settings, load_settings
from haiper_sync.store.migrations import refuse_foreign
from haiper_sync.sync.plan import check_manifest, parse_age

# The flow's parameter bounds (flows/sync.py), checked here so a mistake costs no server start.
BOUNDS = {"concurrency": (1, 256), "rate_limit": (1, 1_000_000), "chunk_size": (0, 10_000)}


def settings_or_fail() -> Settings:
    """The ``HAIPER_*`` settings, or a one-line `ConfigError` naming the variable that is wrong."""
    try:
        return load_settings()
    except ValidationError as error:
        first = error.errors()[0]
        name = "HAIPER_" + str(first["loc"][0]).upper() if first["loc"] else "HAIPER_*"
        raise ConfigError(f"{name}: {first['msg']} (got {first.get('input')!r})") from None


def _choose(args: argparse.Namespace, name: str, settings: Settings) -> tuple[Any, str]:
    """The flag's value if given (0 included), else the setting's; and where it came from."""
    value = getattr(args, name)
    if value is not None:
        return value, "--" + name.replace("_", "-")
    return getattr(settings, name), "HAIPER_" + name.upper()


def sync_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The flow's parameters for ``haiper-sync sync``, checked; `ConfigError` on a mistake."""
    check_manifest(args.manifest, args.manifest_format)
    settings = settings_or_fail()
    params: dict[str, Any] = {
        "manifest": args.manifest,
        "refresh": args.refresh,
        "init_existing": args.init_existing,
        "strategy": args.strategy,
        "recheck_all": args.recheck_all,
        "refresh_older_than": args.refresh_older_than or "",
        "manifest_format": args.manifest_format,
        "max_error_ratio": args.max_error_ratio,
    }
    if args.refresh_older_than is not None:
        try:
            parse_age(args.refresh_older_than)
        except ConfigError as error:
            raise ConfigError(f"--refresh-older-than: {error}") from None
    for name, (low, high) in BOUNDS.items():
        value, source = _choose(args, name, settings)
        if not low <= value <= high:
            raise ConfigError(f"{source} must be between {low:,} and {high:,} (got {value})")
        params[name] = value
    if not 0 <= args.max_error_ratio <= 1:
        raise ConfigError(f"--max-error-ratio must be between 0 and 1 (got {args.max_error_ratio})")
    if args.max_requests is not None and args.max_requests < 1:
        raise ConfigError(f"--max-requests must be at least 1 (got {args.max_requests})")
    params["max_requests"] = args.max_requests or 0
    params["api_url"], source = _choose(args, "api_url", settings)
    url = urlsplit(params["api_url"])
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(
            f"{source} must be an http(s) URL such as https://api.haiper.ai "
            f"(got {params['api_url']!r})"
        )
    params["db_path"], source = _choose(args, "db", settings)
    check_db_path(Path(params["db_path"]), source)
    if not args.init_existing:
        check_not_foreign(Path(params["db_path"]))
    if not (settings.api_key and settings.api_key.get_secret_value()) and not os.environ.get(
        "PREFECT_API_URL"
    ):
        raise ConfigError(
            "no API key: export HAIPER_API_KEY (or, with a Prefect server, create its Secret "
            f"block {SECRET_BLOCK!r})"
        )
    return params


def check_db_path(path: Path, source: str) -> None:
    """A DuckDB file can be created or opened at ``path``."""
    if path.is_dir():
        raise ConfigError(
            f"{source} {path} is a directory; give a file, e.g. {path / 'haiper.duckdb'}"
        )
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise ConfigError(f"{source} {path}: no permission to read and write it")
        return
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{source} {path}: cannot create it ({parent} is not writable)")


def check_not_foreign(path: Path) -> None:
    """Refuse a DuckDB file that has tables but no haiper-sync schema (the sync checks again)."""
    if not path.is_file():
        return
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return  # held by another process, or not DuckDB: the run itself says so
    try:
        refuse_foreign(con)
    except ForeignDatabase as error:
        raise ForeignDatabase(f"{path}: {error}") from None
    finally:
        con.close()
