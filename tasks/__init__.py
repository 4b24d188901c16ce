"""Prefect tasks: thin wrappers that put the haiper_sync core on Prefect's engine."""

from tasks.api import check_status, close_connections, fetch_detail, resolve_api_key
from tasks.db import ChunkWriter, finish_sync, prepare_sync, write_results
from tasks.report import RunProgress, publish_summary

__all__ = [
    "ChunkWriter",
    "RunProgress",
    "check_status",
    "close_connections",
    "fetch_detail",
    "finish_sync",
    "prepare_sync",
    "publish_summary",
    "resolve_api_key",
    "write_results",
]
