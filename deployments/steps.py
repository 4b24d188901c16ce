"""The pull step of the haiper-sync deployments: where a run starts, on whichever worker."""

from __future__ import annotations

import os
from pathlib import Path

# The checkout `make install` installs from (editable): the code's own parent directory.
CHECKOUT = Path(__file__).resolve().parents[1]


def enter_home() -> dict[str, str]:
    """Start the run in its base directory, which relative paths resolve against.

    ``HAIPER_SYNC_HOME`` if the worker sets it; else the checkout the code was installed from
    (a worker started with `prefect worker start` from anywhere); else the directory the worker
    gave the run. Nothing of the deploying machine is stored in the deployment.
    """
    home = os.environ.get("HAIPER_SYNC_HOME")
    if home:
        base = Path(home).expanduser()
        if not base.is_dir():
            raise NotADirectoryError(f"HAIPER_SYNC_HOME={home} is not a directory on this worker")
    elif (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "flows").is_dir():
        base = CHECKOUT
    else:
        base = Path.cwd()
    os.chdir(base)
    return {"directory": str(base)}
