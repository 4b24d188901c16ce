"""Every tunable of haiper-sync in one place, read from the environment (``HAIPER_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_API_URL = "https://api.haiper.ai"
DEFAULT_DB = "haiper.duckdb"
# The API's documented default quota; configurable because Haiper raises it on request.
DEFAULT_RATE_LIMIT = 500
# The Prefect Secret block a flow reads the key from when HAIPER_API_KEY is not set.
SECRET_BLOCK = "haiper-api-key"


class Settings(BaseSettings):
    """Runtime settings; environment variables override the defaults."""

    model_config = SettingsConfigDict(env_prefix="HAIPER_", extra="ignore")

    api_key: SecretStr | None = None
    api_url: str = DEFAULT_API_URL
    db: str = DEFAULT_DB
    concurrency: int = Field(default=16, ge=1, le=256)
    rate_limit: int = Field(default=DEFAULT_RATE_LIMIT, ge=1, description="requests per minute")
    # The API's quota window. Only tests shrink it (with the simulator's) to see many windows.
    rate_window: float = Field(default=60.0, gt=0)
    # IDs per chunk; 0: sized from the rate limit (see `manifest.auto_chunk_size`).
    chunk_size: int = Field(default=0, ge=0, le=10_000)
    # Bounds Prefect's bookkeeping: a huge manifest gets bigger chunks, not more task runs.
    max_chunks: int = Field(default=500, ge=1)
    max_attempts: int = Field(default=5, ge=1, le=20)
    max_retry_after: float = Field(default=60.0, ge=0)
    # Consecutive failed requests (refused, DNS, TLS, timeouts, 5xx), over at least
    # breaker_seconds with no success, that stop a run as "API unreachable".
    breaker_threshold: int = Field(default=10, ge=1)
    breaker_seconds: float = Field(default=5.0, ge=0)
    # The network: an explicit proxy (else HTTP(S)_PROXY / ALL_PROXY / NO_PROXY), a CA bundle
    # (else SSL_CERT_FILE / SSL_CERT_DIR, else certifi's), and the transport under httpx.
    proxy: str | None = None
    ca_bundle: str | None = None
    http_backend: Literal["aiohttp", "httpx"] = "aiohttp"
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    request_deadline: float = 60.0
    lock_timeout: float = Field(default=60.0, ge=0, description="seconds to wait for the DB lock")
    # Where fetching runs: Prefect's thread pool in the flow process, or a Dask cluster
    # (a LocalCluster of `dask_workers` processes, or the scheduler at `dask_address`).
    task_runner: Literal["threads", "dask"] = "threads"
    dask_address: str | None = None
    dask_workers: int = Field(default=2, ge=1, le=256)
    # Media archive
    # Where creations' media files are kept: a directory, or s3:// gs:// az:// (obstore reads
    # AWS_* / GOOGLE_* / AZURE_* from the environment); "" archives nothing.
    archive_media: str = ""
    media_concurrency: int = Field(default=8, ge=1, le=256)
    # A bigger body is refused before it is read: no CDN file of a creation is near it.
    media_max_bytes: int = Field(default=2 * 1024**3, ge=1)
    # Bytes per second over all downloads, so an archive can share a link; 0: no cap.
    media_bandwidth: int = Field(default=0, ge=0)


def load_settings() -> Settings:
    """Read settings from the environment."""
    return Settings()
