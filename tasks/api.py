"""Tasks that talk to the Haiper API (they may run on Dask workers: inputs and outputs pickle)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from haiper_sync.errors import ConfigError
from haiper_sync.pipeline import DetailBatch, StatusBatch, check_statuses, fetch_details
from haiper_sync.retry import is_transient
from haiper_sync.runtime import ApiConfig, close_engines, engine_for
from haiper_sync.settings import load_settings

SECRET_BLOCK = "haiper-api-key"


def _retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    # Per-request retries happen in the core; this only catches a whole chunk failing
    # transiently (e.g. the engine thread losing its loop), never a 401.
    try:
        state.result()
    except Exception as error:
        return is_transient(error)
    return False


def resolve_api_key() -> SecretStr:
    """The API key: ``HAIPER_API_KEY`` if set, else the Prefect Secret block ``haiper-api-key``."""
    settings = load_settings()
    if settings.api_key is not None and settings.api_key.get_secret_value():
        return settings.api_key
    try:
        from prefect.blocks.system import Secret

        value = Secret.load(SECRET_BLOCK).get()  # type: ignore[union-attr]
    except (ValueError, RuntimeError):
        value = None
    if not value:
        raise ConfigError(
            f"no API key: export HAIPER_API_KEY or create the Prefect Secret block {SECRET_BLOCK!r}"
        )
    return SecretStr(str(value))


# Both API tasks: retried only for transient failures of the whole chunk; never cached
# (their inputs hold a key and their results change over time).
API_TASK_OPTIONS: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [2, 10],
    "retry_condition_fn": _retry_if_transient,
    "cache_policy": NO_CACHE,
}


@task(task_run_name="check-status-{chunk_no}", **API_TASK_OPTIONS)
def check_status(
    ids: list[str], api: ApiConfig, api_key: SecretStr, chunk_no: int = 0
) -> StatusBatch:
    """Check the status of a chunk of creation IDs."""
    engine = engine_for(api, api_key)
    return engine.run(lambda client: check_statuses(client, ids, api.retry))


@task(task_run_name="fetch-detail-{chunk_no}", **API_TASK_OPTIONS)
def fetch_detail(
    statuses: StatusBatch | None,
    known_succeeded: list[str],
    api: ApiConfig,
    api_key: SecretStr,
    chunk_no: int = 0,
) -> DetailBatch:
    """Fetch details for the chunk's IDs whose status is ``succeed``."""
    ids = (statuses.succeeded() if statuses else []) + known_succeeded
    if not ids:
        return DetailBatch()
    engine = engine_for(api, api_key)
    return engine.run(lambda client: fetch_details(client, ids, api.retry))


def close_connections() -> None:
    """Close this process's HTTP connections (end of a run)."""
    close_engines()
