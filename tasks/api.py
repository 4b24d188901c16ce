"""The task that talks to the Haiper API (it may run on a Dask worker: inputs and output pickle)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from haiper_sync import pipeline
from haiper_sync.engine import HttpEngine, WorkerEngine
from haiper_sync.errors import ConfigError
from haiper_sync.settings import load_settings
from haiper_sync.sync import ChunkRows, assemble_chunk

SECRET_BLOCK = "haiper-api-key"


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


# No task retries: every request is retried in the core, and what the core raises (a 401, the
# API unreachable) would fail again. Never cached: the answers change over time.
@task(task_run_name="fetch-chunk-{chunk_no}", cache_policy=NO_CACHE)
def fetch_chunk(
    to_check: list[str],
    known_succeeded: list[str],
    engine: HttpEngine | WorkerEngine,
    run_id: str,
    chunk_no: int = 0,
) -> ChunkRows:
    """Check a chunk's statuses, fetch the details of those that succeeded; return its rows."""
    statuses, details = engine.run(
        lambda client: pipeline.fetch_chunk(client, to_check, known_succeeded, engine.config.retry)
    )
    return assemble_chunk(run_id, statuses, details)
