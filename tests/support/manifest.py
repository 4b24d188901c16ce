"""The type of the ``manifest`` fixture (tests/conftest.py), for annotations."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol


class Manifest(Protocol):
    """Writes a manifest under ``tmp_path`` and returns its path."""

    def __call__(self, ids_or_text: Iterable[str] | str, name: str = "ids.txt") -> Path: ...
