"""Fake DNS: getaddrinfo answering from a table."""

from __future__ import annotations

import ipaddress
import socket

import pytest

_AddrInfo = tuple[
    socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int] | tuple[str, int, int, int]
]


def fake_dns(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> list[str]:
    """Resolve ``table`` names to their addresses in order; ``*.invalid`` fails; rest is real.

    Returns a live list of the names looked up through the table, for assertions.
    """
    real = socket.getaddrinfo
    names = {k.lower().rstrip("."): v for k, v in table.items()}
    lookups: list[str] = []

    def getaddrinfo(
        host: bytes | str | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[_AddrInfo]:
        name = host.decode("idna") if isinstance(host, bytes) else host
        key = (name or "").lower().rstrip(".")
        if key.endswith(".invalid") or key == "invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if key not in names:
            return real(host, port, family, type, proto, flags)  # type: ignore[return-value]
        lookups.append(key)
        port_num = _port_number(port, type)
        kinds = [socket.SocketKind(type)] if type else [socket.SOCK_STREAM]
        result: list[_AddrInfo] = []
        for address in names[key]:
            fam = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
            if family not in (socket.AF_UNSPEC, fam):
                continue
            sockaddr: tuple[str, int] | tuple[str, int, int, int] = (
                (address, port_num, 0, 0) if fam == socket.AF_INET6 else (address, port_num)
            )
            for kind in kinds:
                kind_proto = socket.IPPROTO_UDP if kind == socket.SOCK_DGRAM else socket.IPPROTO_TCP
                canon = key if flags & socket.AI_CANONNAME else ""
                result.append((fam, kind, proto or kind_proto, canon, sockaddr))
        if not result:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return result

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def _port_number(port: bytes | str | int | None, kind: int) -> int:
    """Port as getaddrinfo would turn it into a number (service names included)."""
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode()
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        try:
            return socket.getservbyname(port, "udp" if kind == socket.SOCK_DGRAM else "tcp")
        except OSError as exc:
            raise socket.gaierror(socket.EAI_SERVICE, "Servname not supported") from exc
    return int(port)
