"""A run's options, resolved once for the CLI and the flow alike.

Each option is what the caller gave, else the ``HAIPER_*`` setting of the process that runs
the sync (a CLI, a worker, ``serve``), else the built-in default of `Settings`. A mistake is
one `ConfigError` line naming the flag, parameter or variable it came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from haiper_sync.errors import ConfigError
from haiper_sync.settings import (
    DEFAULTS,
    ManifestFormat,
    Settings,
    Strategy,
    bounds,
    env_name,
    load_settings,
    range_message,
)
from haiper_sync.sync.plan import auto_chunk_size, parse_age

# Options that fall back to a setting when not given: option name → setting name.
FROM_SETTINGS = {
    "db_path": "db",
    "api_url": "api_url",
    "concurrency": "concurrency",
    "rate_limit": "rate_limit",
    "chunk_size": "chunk_size",
    "archive_media": "archive_media",
    "media_concurrency": "media_concurrency",
}
# The flow's parameters use 0 and "" for "not given" (the UI form needs one plain type each).
UNSET_IN_FLOW = (*FROM_SETTINGS, "max_requests", "refresh_older_than")
# Taken from the settings alone: not options a run is given.
SETTINGS_ONLY = ("lock_timeout", "max_chunks", "progress_seconds")


@dataclass(frozen=True)
class SyncOptions:
    """Everything a run was asked to do, checked (the API key aside: it is never an option)."""

    manifest: str
    db_path: str
    api_url: str
    concurrency: int
    rate_limit: int
    chunk_size: int  # 0: sized from the rate limit
    refresh: bool = False
    init_existing: bool = False
    max_requests: int | None = None  # None: no budget
    strategy: Strategy = "status-first"
    recheck_all: bool = False
    refresh_older_than: timedelta | None = None
    manifest_format: ManifestFormat = "auto"
    max_error_ratio: float = DEFAULTS.max_error_ratio
    archive_media: str = DEFAULTS.archive_media  # "": the media is not archived
    media_concurrency: int = DEFAULTS.media_concurrency
    # SETTINGS_ONLY
    lock_timeout: float = DEFAULTS.lock_timeout
    max_chunks: int = DEFAULTS.max_chunks
    progress_seconds: float = DEFAULTS.progress_seconds

    @property
    def requested_chunk_size(self) -> int:
        """IDs per chunk as asked for, or sized from the rate limit (the plan may grow it)."""
        return self.chunk_size or auto_chunk_size(self.rate_limit)

    @property
    def detail_first(self) -> bool:
        """True for the detail-first strategy."""
        return self.strategy == "detail-first"


def _in_bounds(value: Any, setting: str, source: str) -> Any:
    low, high = bounds(setting)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(range_message(source, setting, value))
    return value


def resolve(
    given: Mapping[str, Any],
    *,
    settings: Settings | None = None,
    label: Callable[[str], str] = str,
) -> SyncOptions:
    """The run's `SyncOptions`: ``given`` (None: not given) over the settings over defaults.

    ``label`` names an option as its caller knows it (``--rate-limit``, ``rate_limit``).
    """
    settings = settings or load_settings()
    values: dict[str, Any] = {}
    for option, setting in FROM_SETTINGS.items():
        value, source = given.get(option), label(option)
        if value is None:
            value, source = getattr(settings, setting), env_name(setting)
        values[option] = _in_bounds(value, setting, source)
        if option == "api_url":
            url = urlsplit(str(value))
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ConfigError(
                    f"{source} must be an http(s) URL such as {DEFAULTS.api_url} (got {value!r})"
                )
    ratio = given.get("max_error_ratio")
    values["max_error_ratio"] = _in_bounds(
        settings.max_error_ratio if ratio is None else ratio,
        "max_error_ratio",
        env_name("max_error_ratio") if ratio is None else label("max_error_ratio"),
    )
    max_requests = given.get("max_requests")
    if max_requests is not None and max_requests < 1:
        raise ConfigError(f"{label('max_requests')} must be at least 1 (got {max_requests})")
    age = given.get("refresh_older_than")
    if age is not None:
        try:
            values["refresh_older_than"] = parse_age(str(age))
        except ConfigError as error:
            raise ConfigError(f"{label('refresh_older_than')}: {error}") from None
    for name in ("refresh", "init_existing", "recheck_all", "strategy", "manifest_format"):
        if given.get(name) is not None:
            values[name] = given[name]
    return SyncOptions(
        manifest=str(given["manifest"]),
        max_requests=max_requests,
        lock_timeout=settings.lock_timeout,
        max_chunks=settings.max_chunks,
        progress_seconds=settings.progress_seconds,
        **values,
    )


def given_by_flow(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The flow's parameters as `resolve` takes them: its 0 and "" mean "not given"."""
    return {
        name: None if name in UNSET_IN_FLOW and value in (0, "") else value
        for name, value in parameters.items()
    }


def flow_parameters(options: SyncOptions) -> dict[str, Any]:
    """The flow's parameters for resolved ``options``: the inverse of `given_by_flow`."""
    parameters = {
        f.name: getattr(options, f.name) for f in fields(SyncOptions) if f.name not in SETTINGS_ONLY
    }
    parameters["max_requests"] = options.max_requests or 0
    age = options.refresh_older_than
    parameters["refresh_older_than"] = f"{int(age.total_seconds())}s" if age else ""
    return parameters
