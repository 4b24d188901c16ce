"""Creation ID hygiene: an allowlist checked before any URL is built."""

from __future__ import annotations

import re
from urllib.parse import quote

MAX_ID_LENGTH = 128
# ASCII letters, digits, '-' and '_' only: nothing a URL, a path or a shell could reinterpret.
ID_PATTERN = r"[A-Za-z0-9_-]{1,128}"
_ID_RE = re.compile(ID_PATTERN)


class InvalidCreationId(ValueError):
    """A manifest entry that is not a safe creation ID."""


def id_problem(candidate: str) -> str | None:
    """Why ``candidate`` is not an acceptable creation ID, or None when it is."""
    if not candidate:
        return "empty ID"
    if len(candidate) > MAX_ID_LENGTH:
        return f"longer than {MAX_ID_LENGTH} characters"
    if _ID_RE.fullmatch(candidate) is None:
        return "contains characters outside [A-Za-z0-9_-]"
    return None


def validate_id(candidate: str) -> str:
    """Return ``candidate`` if it is a safe creation ID, else raise `InvalidCreationId`."""
    problem = id_problem(candidate)
    if problem is not None:
        raise InvalidCreationId(f"{problem}: {candidate[:40]!r}")
    return candidate


def id_path_segment(creation_id: str) -> str:
    """The ID as a URL path segment: validated, then percent-encoded all the same."""
    return quote(validate_id(creation_id), safe="")
