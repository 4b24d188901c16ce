"""Sanity checks for the network stand-ins in ``tests.netstubs``."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.netstubs import (
    CannedServer,
    ForwardProxy,
    Reply,
    SeenRequest,
    blackhole,
    dead_port,
    fake_dns,
    private_ca,
    serve_beside_blackhole,
)


def _hello(request: SeenRequest) -> Reply:
    """Echo the path back as plain text."""
    return Reply(body=f"hello {request.path}".encode(), headers=[("Content-Type", "text/plain")])


def test_canned_server_gzip_and_keep_alive() -> None:
    payload = b'{"items": []}' * 50

    def handler(request: SeenRequest) -> Reply:
        return Reply(
            headers=[("Content-Encoding", "gzip"), ("Content-Type", "application/json")],
            body=gzip.compress(payload),
            chunked=request.path == "/chunked",
        )

    with CannedServer(handler) as server, httpx.Client(trust_env=False) as client:
        assert server.url == f"http://127.0.0.1:{server.port}"
        for path in ("/a", "/chunked", "/c"):
            response = client.get(server.url + path)
            assert response.status_code == 200
            assert response.content == payload
        seen = server.requests
    assert [r.path for r in seen] == ["/a", "/chunked", "/c"]
    assert {r.conn for r in seen} == {1}  # one connection reused for all three
    assert server.connection_count == 1
    assert seen[0].header("ACCEPT-ENCODING") is not None


def test_proxy_reaches_made_up_host_over_http_and_connect(tmp_path: Path) -> None:
    ca = private_ca(tmp_path)
    tls_ctx = ca.server_context("api.haiper.test")
    with (
        CannedServer(_hello) as plain,
        CannedServer(_hello, ssl_context=tls_ctx) as secure,
        ForwardProxy(
            {
                "api.haiper.test:8123": ("127.0.0.1", plain.port),
                "api.haiper.test:8443": ("127.0.0.1", secure.port),
            }
        ) as proxy,
        httpx.Client(proxy=proxy.url, verify=ca.client_context(), trust_env=False) as client,
    ):
        response = client.get("http://api.haiper.test:8123/v1/x?page=2")
        assert response.text == "hello /v1/x"
        assert response.headers["connection"] == "close"
        forwarded = plain.requests[0]
        assert forwarded.target == "/v1/x?page=2"  # origin form upstream
        assert forwarded.header("connection") == "close"
        assert forwarded.header("host") == "api.haiper.test:8123"

        response = client.get("https://api.haiper.test:8443/v1/y")
        assert response.text == "hello /v1/y"
        assert secure.url.startswith("https://127.0.0.1:")

        assert proxy.seen == [
            "GET http://api.haiper.test:8123/v1/x?page=2",
            "CONNECT api.haiper.test:8443",
        ]
        assert proxy.count == 2


def test_proxy_auth_and_bad_gateway() -> None:
    hosts = {"gone.test": ("127.0.0.1", dead_port())}
    with ForwardProxy(hosts, require_auth=("u", "p")) as proxy:
        with httpx.Client(proxy=proxy.url, trust_env=False) as client:
            assert client.get("http://gone.test/").status_code == 407
        authed = proxy.url.replace("http://", "http://u:p@")
        with httpx.Client(proxy=authed, trust_env=False) as client:
            assert client.get("http://gone.test/").status_code == 502
        assert proxy.count == 2


def test_blackhole_connect_times_out() -> None:
    with blackhole() as port:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            socket.create_connection(("127.0.0.2", port), timeout=0.5)
        assert time.monotonic() - started < 2


def test_dead_port_refuses() -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", dead_port()), timeout=2).close()


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


def test_aiohttp_happy_eyeballs_skips_blackhole(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fetch(url: str) -> tuple[int, str]:
        timeout = aiohttp.ClientTimeout(total=10, sock_connect=3, connect=3)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url) as response,
        ):
            return response.status, await response.text()

    with serve_beside_blackhole(_hello) as (port, server):
        lookups = fake_dns(monkeypatch, {"eyeballs.test": ["127.0.0.2", "127.0.0.1"]})
        status, text = asyncio.run(fetch(f"http://eyeballs.test:{port}/"))
    assert (status, text) == (200, "hello /")
    assert lookups == ["eyeballs.test"]  # aiohttp's resolver went through the patched attribute
    assert len(server.requests) == 1


def test_expired_certificate_is_refused(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    ca = private_ca(tmp_path)
    with CannedServer(_hello, ssl_context=ca.server_context("127.0.0.1", expired=True)) as server:
        with (
            httpx.Client(verify=ca.client_context(), trust_env=False) as client,
            pytest.raises(httpx.ConnectError, match="expired"),
        ):
            client.get(server.url + "/")
        # The refused handshake must leave the server serving.
        with httpx.Client(verify=False, trust_env=False) as client:
            assert client.get(server.url + "/ok").text == "hello /ok"
    assert "Traceback" not in capfd.readouterr().err
