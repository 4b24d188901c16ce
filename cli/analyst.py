"""The analyst's commands: query, status, export."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(commands: Any) -> None:
    """Register the analyst's subcommands on the ``haiper-sync`` parser."""
    del commands


__all__ = ["add_commands", "argparse"]
