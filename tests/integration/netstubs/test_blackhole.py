"""Sanity checks for ``tests.support.blackhole``."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import pytest

from tests.support.blackhole import blackhole, serve_beside_blackhole
from tests.support.canned import echo_path
from tests.support.dns import fake_dns


def test_blackhole_connect_times_out() -> None:
    with blackhole() as port:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            socket.create_connection(("127.0.0.2", port), timeout=0.5)
        assert time.monotonic() - started < 2


def test_aiohttp_happy_eyeballs_skips_blackhole(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fetch(url: str) -> tuple[int, str]:
        timeout = aiohttp.ClientTimeout(total=10, sock_connect=3, connect=3)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url) as response,
        ):
            return response.status, await response.text()

    with serve_beside_blackhole(echo_path) as (port, server):
        lookups = fake_dns(monkeypatch, {"eyeballs.test": ["127.0.0.2", "127.0.0.1"]})
        status, text = asyncio.run(fetch(f"http://eyeballs.test:{port}/"))
    assert (status, text) == (200, "hello /")
    assert lookups == ["eyeballs.test"]  # aiohttp's resolver went through the patched attribute
    assert len(server.requests) == 1
