"""Dead ports: a port with nothing listening."""

from __future__ import annotations

import socket


def dead_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` with nothing listening (connects are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
