"""The creation statuses the API reports, and which of them are final: defined once, here."""

from __future__ import annotations

# The API's five statuses (the contract, ../shared/haiper-api/README.md).
KNOWN_STATUSES = frozenset({"pending", "processing", "post_processing", "succeed", "failed"})
# A creation in one of these never changes again; every other status may, including ones the
# API adds later.
TERMINAL_STATUSES = frozenset({"succeed", "failed"})
SUCCEEDED = "succeed"
FAILED = "failed"


def sql_not_terminal(column: str = "status") -> str:
    """A SQL condition true for a status that may still change (NULL included)."""
    final = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))
    return f"({column} IS NULL OR {column} NOT IN ({final}))"
