"""Prefect's API server for the CLI's temporary API: uvicorn, given the command line's arguments.

Prefect's server is imported with the garbage collector paused, then frozen: its import makes
about a million long-lived objects, and the collector would scan them again and again while it
boots (0.6 s of a 3 s import here) and while it serves the run.
"""

from __future__ import annotations

import gc


def main() -> None:
    """Import Prefect's server with the collector paused, freeze what it made, run uvicorn."""
    gc.disable()
    import prefect.server.api.server  # noqa: F401

    gc.freeze()
    gc.enable()
    from uvicorn.main import main as uvicorn

    uvicorn()


if __name__ == "__main__":
    main()
