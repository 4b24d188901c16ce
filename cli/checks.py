"""Checks before Prefect starts: each mistake is one line naming its flag or variable."""

from __future__ import annotations

import argparse
import os
from dataclasses import fields
from pathlib import Path

import duckdb

from haiper_sync.errors import ConfigError, ForeignDatabase
from haiper_sync.settings import NO_API_KEY, env_name, load_settings
from haiper_sync.store.migrations import refuse_foreign
from haiper_sync.sync.manifest import check_manifest
from haiper_sync.sync.options import SyncOptions, resolve

# The flags whose names differ from the option they set.
_FLAGS = {"db_path": "--db"}


def flag(option: str) -> str:
    """The ``sync`` flag that sets ``option``."""
    return _FLAGS.get(option, "--" + option.replace("_", "-"))


def sync_options(args: argparse.Namespace) -> SyncOptions:
    """The run's options for ``haiper-sync sync``, checked; `ConfigError` on a mistake."""
    check_manifest(args.manifest, args.manifest_format)
    settings = load_settings()
    given = {field.name: getattr(args, field.name, None) for field in fields(SyncOptions)}
    given["db_path"] = args.db
    options = resolve(given, settings=settings, label=flag)
    source = flag("db_path") if args.db is not None else env_name("db")
    check_db_path(Path(options.db_path), source)
    if not options.init_existing:
        check_not_foreign(Path(options.db_path))
    if not (settings.api_key and settings.api_key.get_secret_value()) and not os.environ.get(
        "PREFECT_API_URL"
    ):
        raise ConfigError(NO_API_KEY)
    return options


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
