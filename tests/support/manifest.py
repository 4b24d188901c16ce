"""The type of the ``manifest`` fixture (tests/conftest.py), for annotations."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol


class Manifest(Protocol):
    """Writes a manifest under ``tmp_path`` and returns its path."""

    def __call__(self, ids_or_text: Iterable[str] | str, name: str = "ids.txt") -> Path: ...


def write_manifest(folder: Path, ids_or_text: Iterable[str] | str, name: str = "ids.txt") -> Path:
    """IDs one a line (each ending in a newline), or text as given, in ``folder / name``.

    The ``manifest`` fixture writes with this into ``tmp_path``; module-scoped fixtures call it
    with a folder of their own.
    """
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ids_or_text if isinstance(ids_or_text, str) else "\n".join(ids_or_text) + "\n"
    path.write_text(text)
    return path
