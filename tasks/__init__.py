"""Prefect tasks: thin wrappers that put the haiper_sync core on Prefect's engine."""

from tasks.api import fetch_chunk
from tasks.db import finish_sync, prepare_sync

__all__ = ["fetch_chunk", "finish_sync", "prepare_sync"]
