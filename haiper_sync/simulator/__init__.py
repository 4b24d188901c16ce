"""A local HTTP simulator of the Haiper API (status and detail endpoints), for tests and demos.

Its data and configuration need nothing beyond the core; serving it needs the ``sim`` extra
(starlette, uvicorn): ``pip install 'haiper-sync[sim]'`` (``make install`` includes it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from haiper_sync.errors import ConfigError
from haiper_sync.simulator.data import (
    creation_detail,
    creation_status,
    generate_ids,
    is_terminal,
)
from haiper_sync.simulator.state import SimulatorConfig, SimulatorStats

if TYPE_CHECKING:
    from haiper_sync.simulator.app import create_app
    from haiper_sync.simulator.server import SimulatorServer, serve

SERVER_NEEDS = "the simulator's server needs the sim extra: pip install 'haiper-sync[sim]'"
_SERVED = {"SimulatorServer": "server", "serve": "server", "create_app": "app"}

__all__ = [
    "SimulatorConfig",
    "SimulatorServer",
    "SimulatorStats",
    "create_app",
    "creation_detail",
    "creation_status",
    "generate_ids",
    "is_terminal",
    "serve",
]


def __getattr__(name: str) -> Any:
    # The server's dependencies are optional: imported only when a server is asked for.
    if name not in _SERVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(f"haiper_sync.simulator.{_SERVED[name]}")
    except ModuleNotFoundError as missing:
        raise ConfigError(f"{SERVER_NEEDS} ({missing})") from None
    return getattr(module, name)
