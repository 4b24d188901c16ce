"""Every tunable of haiper-sync in one place, read from the environment (``HAIPER_*``).

Each default and bound is written here once: the API client, the engine, the store, the CLI's
checks and the flow's parameters read them from `Settings` (`DEFAULTS`, `bounds`), and the
README's settings table is tested against this model.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import annotated_types
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from haiper_sync.errors import ConfigError

ENV_PREFIX = "HAIPER_"
# The Prefect Secret block a flow reads the key from when HAIPER_API_KEY is not set.
SECRET_BLOCK = "haiper-api-key"
NO_API_KEY = (
    f"no API key: export HAIPER_API_KEY or create the Prefect Secret block {SECRET_BLOCK!r}"
)

ManifestFormat = Literal["auto", "lines", "csv", "parquet", "json"]
Strategy = Literal["status-first", "detail-first"]
TaskRunnerKind = Literal["threads", "dask"]
HttpBackend = Literal["aiohttp", "httpx"]


class Settings(BaseSettings):
    """Runtime settings; environment variables (``HAIPER_<NAME>``) override the defaults."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    api_key: SecretStr | None = Field(
        default=None, description="API key; else the Prefect Secret block `haiper-api-key`"
    )
    api_url: str = Field(
        default="https://api.haiper.ai", description="API base URL (or the simulator's)"
    )
    db: str = Field(default="haiper.duckdb", description="DuckDB file")
    concurrency: int = Field(default=16, ge=1, le=256, description="requests in flight")
    # The API's documented default quota; configurable because Haiper raises it on request.
    rate_limit: int = Field(
        default=500,
        ge=1,
        le=1_000_000,
        description="requests per minute (the API's default quota)",
    )
    # The API's quota window. Only tests shrink it (with the simulator's) to see many windows.
    rate_window: float = Field(
        default=60.0, gt=0, description="seconds of the quota window (tests shrink it)"
    )
    chunk_size: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="IDs per task run; 0 sizes it from the rate limit (250 at 500/min, up to "
        "1,000); grown so a run has at most `HAIPER_MAX_CHUNKS` chunks",
    )
    # Bounds Prefect's bookkeeping: a huge manifest gets bigger chunks, not more task runs.
    max_chunks: int = Field(default=500, ge=1, description="most task runs (chunks) in a run")
    # A run's log says how far it is at least this often, also while a slow chunk is in flight.
    progress_seconds: float = Field(
        default=30.0, gt=0, description="seconds between a run's progress lines, at most"
    )
    max_error_ratio: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="a run where more than this share of the manifest's IDs errored fails",
    )
    lock_timeout: float = Field(
        default=60.0,
        ge=0,
        description="seconds to wait for a DuckDB file another process holds, or another sync",
    )
    max_attempts: int = Field(
        default=5,
        ge=1,
        le=20,
        description="attempts per request before the ID is deferred to the next run",
    )
    max_retry_after: float = Field(
        default=60.0, ge=0, description="longest `Retry-After` honoured; longer defers the ID"
    )
    connect_timeout: float = Field(default=5.0, gt=0, description="connect timeout, seconds")
    read_timeout: float = Field(default=30.0, gt=0, description="idle read timeout, seconds")
    request_deadline: float = Field(
        default=60.0, gt=0, description="deadline of a whole request, seconds"
    )
    # Consecutive failed requests (refused, DNS, TLS, timeouts, 5xx), over at least
    # breaker_seconds with no success, that stop a run as "API unreachable".
    breaker_threshold: int = Field(
        default=10,
        ge=1,
        description='failed requests in a row that stop a run as "API unreachable"',
    )
    breaker_seconds: float = Field(
        default=5.0, ge=0, description="... when they span at least this many seconds"
    )
    # The network: an explicit proxy (else HTTP(S)_PROXY / ALL_PROXY / NO_PROXY), a CA bundle
    # (else SSL_CERT_FILE / SSL_CERT_DIR, else certifi's), and the transport under httpx.
    proxy: str | None = Field(
        default=None,
        description="proxy URL for the API; else `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / "
        "`NO_PROXY`",
    )
    ca_bundle: str | None = Field(
        default=None,
        description="PEM file of CA certificates to trust; else `SSL_CERT_FILE`, else `certifi`'s",
    )
    http_backend: HttpBackend = Field(
        default="aiohttp",
        description="the transport under httpx: `aiohttp` (httpx-aiohttp) or `httpx`",
    )
    # Where fetching runs: Prefect's thread pool in the flow process, or a Dask cluster
    # (a LocalCluster of `dask_workers` processes, or the scheduler at `dask_address`).
    task_runner: TaskRunnerKind = Field(
        default="threads",
        description="`dask` runs the fetching on a Dask cluster (docs/performance.md)",
    )
    dask_address: str | None = Field(default=None, description="an existing Dask scheduler")
    dask_workers: int = Field(
        default=2, ge=1, le=256, description="processes of a local Dask cluster"
    )

    # Media archive: where creations' media files are kept, and how they are fetched.
    archive_media: str = Field(
        default="",
        description="where media files are archived: a directory, or `s3://`, `gs://`, "
        "`az://` (credentials from `AWS_*`, `GOOGLE_*`, `AZURE_*`); empty: not archived",
    )
    media_concurrency: int = Field(
        default=8, ge=1, le=256, description="media files downloaded at once"
    )
    # A bigger body is refused before it is read: no CDN file of a creation is near it.
    media_max_bytes: int = Field(
        default=2 * 1024**3, ge=1, description="largest media file archived, bytes"
    )
    # Bytes per second over all downloads, so an archive can share a link; 0: no cap.
    media_bandwidth: int = Field(
        default=0, ge=0, description="bytes per second over all media downloads; 0: no cap"
    )


# The defaults as an instance (no environment read): `DEFAULTS.concurrency` is 16.
DEFAULTS: Final = Settings.model_construct()


def bounds(name: str) -> tuple[Any, Any]:
    """The inclusive ``(low, high)`` a setting must lie in (None where unbounded)."""
    low = high = None
    for rule in Settings.model_fields[name].metadata:
        if isinstance(rule, annotated_types.Ge):
            low = rule.ge
        elif isinstance(rule, annotated_types.Le):
            high = rule.le
    return low, high


def env_name(name: str) -> str:
    """The environment variable of a setting."""
    return ENV_PREFIX + name.upper()


def range_message(source: str, name: str, value: object) -> str:
    """One line saying ``value`` of ``source`` is outside the bounds of setting ``name``."""
    low, high = bounds(name)
    if high is None:
        return f"{source} must be at least {low:,} (got {value})"
    return f"{source} must be between {low:,} and {high:,} (got {value})"


def _shown(value: object) -> str:
    if value is None or value == "":
        return "none"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def settings_table() -> str:
    """The README's table of every ``HAIPER_*`` setting, from the model itself."""
    lines = ["| environment | default | range | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        low, high = bounds(name)
        span = "" if low is None else f"{low:,} to {high:,}" if high is not None else f"≥ {low:,}"
        if not span and any(isinstance(rule, annotated_types.Gt) for rule in field.metadata):
            span = "> 0"
        lines.append(
            f"| `{env_name(name)}` | {_shown(field.default)} | {span} | {field.description} |"
        )
    return "\n".join(lines)


def load_settings() -> Settings:
    """The ``HAIPER_*`` settings, or a one-line `ConfigError` naming the variable that is wrong."""
    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        if not first["loc"]:
            raise ConfigError(f"HAIPER_*: {first['msg']}") from None
        name = str(first["loc"][0])
        value = first.get("input")
        if first["type"] in ("greater_than_equal", "less_than_equal"):
            raise ConfigError(range_message(env_name(name), name, value)) from None
        raise ConfigError(f"{env_name(name)}: {first['msg']} (got {value!r})") from None


if __name__ == "__main__":
    # `python -m haiper_sync.settings` prints the README's settings table.
    print(settings_table())
