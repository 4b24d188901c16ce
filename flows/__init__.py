"""Prefect flows: wiring tasks together and declaring the parameters users see."""

from flows.sync import sync_creations

__all__ = ["sync_creations"]
