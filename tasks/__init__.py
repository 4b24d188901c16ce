"""Prefect tasks: thin wrappers that put the haiper_sync core on Prefect's engine."""

from tasks.api import check_status, close_connections, fetch_detail, resolve_api_key
from tasks.db import finish_sync, prepare_sync, write_results

__all__ = [
    "check_status",
    "close_connections",
    "fetch_detail",
    "finish_sync",
    "prepare_sync",
    "resolve_api_key",
    "write_results",
]
