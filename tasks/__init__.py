"""Prefect tasks: thin wrappers that put the haiper_sync core on Prefect's engine."""

from tasks.api import fetch_chunk, resolve_api_key
from tasks.db import ChunkWriter, finish_sync, prepare_sync
from tasks.report import RunProgress, publish_summary

__all__ = [
    "ChunkWriter",
    "RunProgress",
    "fetch_chunk",
    "finish_sync",
    "prepare_sync",
    "publish_summary",
    "resolve_api_key",
]
