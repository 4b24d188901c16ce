"""Sanity checks for ``tests.support.dns``."""

from __future__ import annotations

import socket

import pytest

from tests.support.dns import fake_dns


def test_fake_dns_table(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups = fake_dns(monkeypatch, {"dual.test": ["::1", "127.0.0.1"]})
    infos = socket.getaddrinfo("dual.test", "8080")
    assert [i[4] for i in infos] == [("::1", 8080, 0, 0), ("127.0.0.1", 8080)]
    assert all(i[1] == socket.SOCK_STREAM and i[2] == socket.IPPROTO_TCP for i in infos)
    assert socket.getaddrinfo("dual.test", None, socket.AF_INET)[0][4] == ("127.0.0.1", 0)
    assert socket.getaddrinfo("dual.test", 443, type=socket.SOCK_STREAM)[1][4][1] == 443
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("nowhere.invalid", 80)
    assert socket.getaddrinfo("127.0.0.1", 80)[0][4] == ("127.0.0.1", 80)  # real resolver
    assert lookups == ["dual.test"] * 3
