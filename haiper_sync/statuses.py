"""The creation statuses the API reports, and which of them are final: defined once, here."""

from __future__ import annotations

# The API's five statuses (the contract, ../shared/haiper-api/README.md).
KNOWN_STATUSES = frozenset({"pending", "processing", "post_processing", "succeed", "failed"})
# A creation in one of these never changes again; every other status may, including ones the
# API adds later.
TERMINAL_STATUSES = frozenset({"succeed", "failed"})
SUCCEEDED = "succeed"
FAILED = "failed"
# Our own final status (not the API's): an ID the API kept answering 404 for, over
# NOT_FOUND_AFTER_DAYS. Such an ID is no longer asked about unless a run is told --recheck-all.
NOT_FOUND = "not_found"
NOT_FOUND_AFTER_DAYS = 7
# An ID whose answer did not change (the same status and progress, or another 404) waits
# before it is asked again: BACKOFF_FIRST_HOURS after the first unchanged check, doubling after
# each further one, at most BACKOFF_MAX_HOURS. 20 h keeps a nightly sync asking the next night.
BACKOFF_FIRST_HOURS = 20
BACKOFF_MAX_HOURS = 96


def sql_not_terminal(column: str = "status") -> str:
    """A SQL condition true for a status that may still change (NULL included)."""
    final = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES | {NOT_FOUND}))
    return f"({column} IS NULL OR {column} NOT IN ({final}))"
