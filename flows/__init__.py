"""Prefect flows: wiring tasks together and declaring the parameters users see."""

from flows.archive import archive_creations
from flows.sync import sync_creations

__all__ = ["archive_creations", "sync_creations"]
