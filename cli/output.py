"""How the CLI reports a failure: one line on standard error, exit code 1."""

from __future__ import annotations

import sys


def fail(message: str) -> int:
    """Print ``haiper-sync: message`` to standard error; return the exit code 1."""
    print(f"haiper-sync: {message}", file=sys.stderr)
    return 1
