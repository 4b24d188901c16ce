"""A local HTTP simulator of the Haiper API (status and detail endpoints), for tests and demos."""

from haiper_sync.simulator.app import create_app
from haiper_sync.simulator.data import (
    creation_detail,
    creation_status,
    generate_ids,
    is_terminal,
)
from haiper_sync.simulator.server import SimulatorServer, serve
from haiper_sync.simulator.state import SimulatorConfig, SimulatorStats

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
