"""Sanity checks for ``tests.support.proxy``."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.canned import CannedServer, echo_path
from tests.support.dead_port import dead_port
from tests.support.proxy import ForwardProxy
from tests.support.tls import private_ca


def test_proxy_reaches_made_up_host_over_http_and_connect(tmp_path: Path) -> None:
    ca = private_ca(tmp_path)
    tls_ctx = ca.server_context("api.haiper.test")
    with (
        CannedServer(echo_path) as plain,
        CannedServer(echo_path, ssl_context=tls_ctx) as secure,
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
