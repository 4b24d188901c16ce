"""Prefect tasks: thin wrappers that put the haiper_sync core on Prefect's engine."""

from tasks.bookkeeping import finish_sync, prepare_sync
from tasks.fetching import fetch_chunk
from tasks.media import archive_creations_media

__all__ = ["archive_creations_media", "fetch_chunk", "finish_sync", "prepare_sync"]
