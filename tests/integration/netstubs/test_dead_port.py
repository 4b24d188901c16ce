"""Sanity checks for ``tests.support.dead_port``."""

from __future__ import annotations

import socket

import pytest

from tests.support.dead_port import dead_port


def test_dead_port_refuses() -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", dead_port()), timeout=2).close()
