"""The client on real networks, stood in for by local servers: proxies, a private CA, odd
encodings, a black-holed address, dead ports. Every error is typed, keeps its cause, and never
holds the token.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import pickle
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import brotli
import httpx
import pytest
import zstandard
from pydantic import SecretStr

from haiper_sync.api.breaker import CircuitBreaker
from haiper_sync.api.client import HaiperClient, Timeouts
from haiper_sync.api.network import Backend, Network, build_http_client
from haiper_sync.api.retry import RetryPolicy
from haiper_sync.errors import (
    ApiUnreachable,
    ApiUntrusted,
    ConfigError,
    HaiperSyncError,
    InvalidResponse,
    RequestFailed,
    ResponseTooLarge,
    TransportFailed,
)
from haiper_sync.sync.fetch import check_statuses
from tests.support.blackhole import serve_beside_blackhole
from tests.support.canned import CannedServer
from tests.support.dead_port import dead_port
from tests.support.dns import fake_dns
from tests.support.proxy import ForwardProxy
from tests.support.tls import private_ca
from tests.support.wire import Reply, SeenRequest

TOKEN = "tok-CANARY-network-7f3a"
STATUS = {"status": "success", "value": {"status": "processing", "progress": 0.25}}
BODY = json.dumps(STATUS).encode()
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR")
SEEN_ERRORS: list[BaseException] = []


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy or CA variables from the machine leak into these tests."""
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def status_reply(request: SeenRequest) -> Reply:
    """A status answer for any path."""
    return Reply(headers=[("Content-Type", "application/json")], body=BODY)


def get_status(url: str, network: Network | None = None, **kw: Any) -> Any:
    """One status request through a fresh client; a raised error is kept for the canary."""

    async def go() -> Any:
        async with HaiperClient(url, SecretStr(TOKEN), network=network, **kw) as client:
            return await client.get_status("abc-1")

    try:
        return asyncio.run(go())
    except BaseException as error:
        SEEN_ERRORS.append(error)
        raise


def failure(url: str, network: Network | None = None, **kw: Any) -> HaiperSyncError:
    """The typed error one status request raises."""
    with pytest.raises(HaiperSyncError) as caught:
        get_status(url, network, **kw)
    return caught.value


@pytest.fixture
def api() -> Iterator[CannedServer]:
    """An API that only answers status requests."""
    with CannedServer(status_reply) as server:
        yield server


# --- proxies ---------------------------------------------------------------------------------


def test_env_proxy_is_the_only_route_to_the_api(
    api: CannedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://api.haiper.test:{api.port}"
    with ForwardProxy({"api.haiper.test": ("127.0.0.1", api.port)}) as proxy:
        direct = failure(url)
        assert isinstance(direct, TransportFailed) and "DNS lookup failed" in str(direct)

        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert get_status(url).value.status == "processing"
        assert proxy.seen == [f"GET {url}/v1/jobs/abc-1/status"]

        # NO_PROXY wins for its hosts: direct again, so DNS fails again.
        monkeypatch.setenv("NO_PROXY", "api.haiper.test")
        assert "DNS lookup failed" in str(failure(url))
        assert proxy.count == 1
    assert api.requests[0].header("Authorization") == f"Bearer {TOKEN}"


def test_all_proxy_and_haiper_proxy_setting(
    api: CannedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://api.haiper.test:{api.port}"
    with ForwardProxy({"api.haiper.test": ("127.0.0.1", api.port)}) as proxy:
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        assert get_status(url).value.status == "processing"
        monkeypatch.delenv("ALL_PROXY")
        assert get_status(url, Network(proxy=proxy.url)).value.status == "processing"
        assert proxy.count == 2


def test_https_through_a_proxy_tunnel_with_a_private_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = private_ca(tmp_path)
    with (
        CannedServer(status_reply, ssl_context=ca.server_context("api.haiper.test")) as api,
        ForwardProxy({"api.haiper.test": ("127.0.0.1", api.port)}) as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        url = f"https://api.haiper.test:{api.port}"
        assert get_status(url, Network(ca_bundle=str(ca.ca_pem))).value.status == "processing"
        assert proxy.seen == [f"CONNECT api.haiper.test:{api.port}"]
        # The proxy only saw the tunnel; the token travelled inside TLS.
        assert all(TOKEN not in line for line in proxy.seen)


def test_proxy_credentials_work_and_never_show_in_errors(api: CannedServer) -> None:
    url = f"http://api.haiper.test:{api.port}"
    hosts = {"api.haiper.test": ("127.0.0.1", api.port)}
    with ForwardProxy(hosts, require_auth=("ops", "s3cret-proxy-pw")) as proxy:
        good = proxy.url.replace("http://", "http://ops:s3cret-proxy-pw@")
        assert get_status(url, Network(proxy=good)).value.status == "processing"
        bad = proxy.url.replace("http://", "http://ops:wrong-proxy-pw@")
        error = failure(url, Network(proxy=bad), timeouts=Timeouts(connect=2, read=2))
        assert "407" in str(error)
        assert "wrong-proxy-pw" not in str(error)
        assert "wrong-proxy-pw" not in repr(Network(proxy=bad))


@pytest.mark.parametrize("proxy", ["ftp://ops:pw-in-url@proxy:21", "socks5://ops:pw-in-url@p:1080"])
def test_an_unusable_proxy_is_a_config_error_without_its_password(proxy: str) -> None:
    error = failure("http://127.0.0.1:1", Network(proxy=proxy))
    assert isinstance(error, ConfigError) and "proxy" in str(error)
    assert "pw-in-url" not in str(error)


def test_the_httpx_backend_takes_the_same_routes(
    api: CannedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://api.haiper.test:{api.port}"
    with ForwardProxy({"api.haiper.test": ("127.0.0.1", api.port)}) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert get_status(url, Network(backend="httpx")).value.status == "processing"
        assert proxy.count == 1


# --- TLS -------------------------------------------------------------------------------------


def test_private_ca_from_setting_or_ssl_cert_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = private_ca(tmp_path)
    with CannedServer(status_reply, ssl_context=ca.server_context("localhost")) as api:
        url = f"https://localhost:{api.port}"
        unknown = failure(url)
        assert isinstance(unknown, ApiUntrusted)
        assert str(unknown).startswith(f"the API at {url} cannot be trusted: ")
        assert "certificate verify failed: unable to get local issuer certificate" in str(unknown)
        assert "HAIPER_CA_BUNDLE" in str(unknown)

        assert get_status(url, Network(ca_bundle=str(ca.ca_pem))).value.status == "processing"
        monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_pem))
        assert get_status(url).value.status == "processing"
        if shutil.which("openssl"):  # to name the file as OpenSSL looks for it
            monkeypatch.delenv("SSL_CERT_FILE")
            monkeypatch.setenv("SSL_CERT_DIR", str(ca_folder(ca.ca_pem, tmp_path / "certs")))
            assert get_status(url).value.status == "processing"


def ca_folder(ca_pem: Path, folder: Path) -> Path:
    """An OpenSSL CA folder holding ``ca_pem`` under its subject-hash name."""
    folder.mkdir()
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(ca_pem)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (folder / f"{subject_hash}.0").write_bytes(ca_pem.read_bytes())
    return folder


def untrusted_run(url: str, network: Network) -> ApiUntrusted:
    """A run over 20 IDs that must stop with `ApiUntrusted`, retries and breaker as in a sync."""
    breaker = CircuitBreaker(url, threshold=10, min_seconds=0)

    async def go() -> Any:
        async with HaiperClient(url, SecretStr(TOKEN), network=network, breaker=breaker) as client:
            ids = [f"id-{i}" for i in range(20)]
            return await check_statuses(client, ids, RetryPolicy(base_delay=0.0))

    with pytest.raises(ApiUntrusted) as caught:
        asyncio.run(go())
    SEEN_ERRORS.append(caught.value)
    return caught.value


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
@pytest.mark.parametrize(
    ("names", "expired", "reason"),
    [
        (("other.example",), False, "Hostname mismatch"),
        (("api.haiper.test",), True, "certificate has expired"),
        (("api.haiper.test",), None, "unable to get local issuer certificate"),
    ],
)
def test_a_certificate_that_never_verifies_stops_the_run_at_the_first_request(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: Any,
    names: tuple[str, ...],
    expired: bool | None,
    reason: str,
) -> None:
    ca = private_ca(tmp_path)
    # expired None: a certificate of a CA the client does not trust.
    trust = Network(backend=backend, ca_bundle=None if expired is None else str(ca.ca_pem))
    context = ca.server_context(*names, expired=bool(expired))
    with (
        CannedServer(status_reply, ssl_context=context) as api,
        ForwardProxy({"api.haiper.test": ("127.0.0.1", api.port)}) as proxy,
    ):
        # Through a proxy: each CONNECT is one connection, so one handshake, tried.
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        url = f"https://api.haiper.test:{api.port}"
        error = untrusted_run(url, trust)
        assert str(error).startswith(f"the API at {url} cannot be trusted: ")
        assert f"TLS certificate verify failed: {reason}" in str(error)
        assert "\n" not in str(error)
        assert proxy.count == 1 and api.requests == []


def test_a_refused_https_connection_is_still_transient() -> None:
    # No certificate was seen: the breaker decides, as for any other transport failure.
    error = failure(f"https://127.0.0.1:{dead_port()}")
    assert type(error) is TransportFailed


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("SSL_CERT_FILE", "{tmp}/missing/ca.pem", "No such file or directory"),
        ("SSL_CERT_FILE", "{tmp}/garbage.pem", "no certificate or crl found"),
        ("SSL_CERT_DIR", "{tmp}/missing", "No such file or directory"),
        ("SSL_CERT_DIR", "{tmp}/garbage.pem", "Not a directory"),
    ],
)
@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
def test_an_unusable_ssl_cert_variable_is_a_one_line_config_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    reason: str,
    backend: Any,
) -> None:
    (tmp_path / "garbage.pem").write_text("this is not a certificate\n")
    path = value.format(tmp=tmp_path)
    monkeypatch.setenv(variable, path)
    error = failure("https://localhost:1", Network(backend=backend))
    assert isinstance(error, ConfigError)
    assert str(error).endswith(f"{variable}={path}: {reason}")
    assert "\n" not in str(error)
    # HAIPER_CA_BUNDLE wins over the variable, as it did before.
    ca = private_ca(tmp_path)
    with CannedServer(status_reply, ssl_context=ca.server_context("localhost")) as api:
        url = f"https://localhost:{api.port}"
        assert get_status(url, Network(backend=backend, ca_bundle=str(ca.ca_pem))).value


def test_unreadable_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    error = failure("https://localhost:1", Network(ca_bundle=str(tmp_path / "missing.pem")))
    assert "CA bundle" in str(error) and "missing.pem" in str(error)
    assert str(error).endswith(": No such file or directory")


# --- encodings and sizes -----------------------------------------------------------------------


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-15)
    return packer.compress(data) + packer.flush()


ENCODED = {
    "gzip": gzip.compress(BODY),
    "deflate": zlib.compress(BODY),
    "raw-deflate": _raw_deflate(BODY),
    "br": brotli.compress(BODY),
    "zstd": zstandard.ZstdCompressor().compress(BODY),
    "gzip, deflate": zlib.compress(gzip.compress(BODY)),
}


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("kind", sorted(ENCODED))
def test_every_encoding_is_decoded(kind: str, chunked: bool) -> None:
    encoding = "deflate" if kind == "raw-deflate" else kind

    def handler(request: SeenRequest) -> Reply:
        return Reply(headers=[("Content-Encoding", encoding)], body=ENCODED[kind], chunked=chunked)

    with CannedServer(handler) as api:
        assert get_status(api.url).value.progress == 0.25
        accepted = api.requests[0].header("Accept-Encoding") or ""
    assert {"gzip", "deflate", "br", "zstd"} <= {e.strip() for e in accepted.split(",")}


def test_an_undecodable_body_is_that_ids_parse_error_not_the_runs() -> None:
    def handler(request: SeenRequest) -> Reply:
        if "bad-1" in request.target:
            return Reply(headers=[("Content-Encoding", "br")], body=b"not brotli at all")
        return status_reply(request)

    async def go(url: str) -> Any:
        async with HaiperClient(url, SecretStr(TOKEN)) as client:
            return await check_statuses(client, ["ok-1", "bad-1", "ok-2"], RetryPolicy(1))

    with CannedServer(handler) as api:
        batch = asyncio.run(go(api.url))
    by_id = {o.creation_id: o for o in batch.outcomes}
    assert by_id["ok-1"].status == by_id["ok-2"].status == "processing"
    error = by_id["bad-1"].error
    assert error is not None and error.stage == "parse" and "undecodable" in error.message


@pytest.mark.parametrize("status", [204, 502])
def test_gzip_header_on_an_empty_answer_is_a_typed_http_error(status: int) -> None:
    def handler(request: SeenRequest) -> Reply:
        return Reply(status=status, headers=[("Content-Encoding", "gzip")])

    with CannedServer(handler) as api:
        error = failure(api.url)
    assert type(error) is RequestFailed and error.status_code == status


@pytest.mark.parametrize("chunked", [False, True])
def test_an_oversized_body_is_cut_off_and_not_retried(chunked: bool) -> None:
    def handler(request: SeenRequest) -> Reply:
        return Reply(body=b"x" * 300_000, chunked=chunked)

    async def go(url: str) -> Any:
        async with HaiperClient(url, SecretStr(TOKEN), max_body=100_000) as client:
            return await check_statuses(client, ["big-1"], RetryPolicy(base_delay=0.0))

    with CannedServer(handler) as api:
        batch = asyncio.run(go(api.url))
        requests = len(api.requests)
    error = batch.outcomes[0].error
    assert error is not None and error.stage == "parse" and "100,000 bytes" in error.message
    assert requests == 1 and batch.retries == 0
    with CannedServer(handler) as api:
        assert isinstance(failure(api.url, max_body=100_000), ResponseTooLarge)


def test_a_huge_header_is_a_typed_failure() -> None:
    def handler(request: SeenRequest) -> Reply:
        return Reply(headers=[("X-Junk", "j" * 70_000)], body=BODY)

    with CannedServer(handler) as api:
        error = failure(api.url)
    assert isinstance(error, TransportFailed)


def test_redirects_are_not_followed_to_another_host(api: CannedServer) -> None:
    def handler(request: SeenRequest) -> Reply:
        return Reply(status=302, headers=[("Location", f"{api.url}/stolen")])

    with CannedServer(handler) as redirecting:
        error = failure(redirecting.url)
    assert isinstance(error, RequestFailed) and error.status_code == 302
    assert api.requests == []


# --- cookies ---------------------------------------------------------------------------------


def cookie_reply(request: SeenRequest) -> Reply:
    """A status answer that sets a CDN's cookie."""
    cookie = ("Set-Cookie", "__cf_bm=bot-score-1; Path=/; HttpOnly")
    return Reply(headers=[("Content-Type", "application/json"), cookie], body=BODY)


async def two_gets(client: Any, url: str) -> None:
    for _ in range(2):
        response = await client.get(url)
        if isinstance(response, aiohttp.ClientResponse):  # httpx's has read its body
            await response.read()


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
def test_the_client_sends_no_cookie_back(backend: Backend) -> None:
    with CannedServer(cookie_reply) as cdn:
        # A host name, not an address: aiohttp's own jar keeps no cookies of IP addresses.
        url = f"http://localhost:{cdn.port}/v1/jobs/abc-1/status"

        async def plain() -> None:
            async with httpx.AsyncClient() as client:
                await two_gets(client, url)
            async with aiohttp.ClientSession() as session:
                await two_gets(session, url)

        asyncio.run(plain())
        # The control: both libraries' clients send the cookie back by default.
        assert [r.header("Cookie") for r in cdn.requests] == [None, "__cf_bm=bot-score-1"] * 2

        async def ours() -> Any:
            client = build_http_client(
                Network(backend=backend), connections=2, connect_timeout=5, read_timeout=5
            )
            async with client:
                await two_gets(client, url)
                return client.cookies

        assert not asyncio.run(ours())
        assert [r.header("Cookie") for r in cdn.requests[4:]] == [None, None]


def test_cookies_cannot_be_given_to_the_client() -> None:
    client = build_http_client(Network(), connections=1, connect_timeout=1, read_timeout=1)
    with pytest.raises(TypeError, match="keeps no cookies"):
        client.cookies = {"session": "x"}
    asyncio.run(client.aclose())


# --- addresses that fail -----------------------------------------------------------------------


def test_a_black_holed_address_falls_back_to_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve_beside_blackhole(status_reply) as (port, server):
        answered = fake_dns(monkeypatch, {"eyeballs.test": ["127.0.0.2", "127.0.0.1"]})
        # Tried one after the other under one connect timeout, the black hole would eat it.
        tight = Timeouts(connect=2.0, read=5.0, deadline=10.0)
        assert get_status(f"http://eyeballs.test:{port}", timeouts=tight).value.progress == 0.25
        assert answered and len(server.requests) == 1


@pytest.mark.parametrize(
    ("host", "expected"),
    [("nohost.invalid", "DNS lookup failed"), ("127.0.0.1", "connection refused")],
)
@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
def test_lost_causes_are_named(
    host: str, expected: str, backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {})
    url = f"http://{host}:{dead_port()}"
    error = failure(url, Network(backend=backend))
    assert isinstance(error, TransportFailed)
    assert expected in str(error) and url in str(error)


def test_a_dead_api_opens_the_breaker_and_no_more_requests_follow() -> None:
    breaker = CircuitBreaker("http://127.0.0.1", threshold=3, min_seconds=0)

    async def go(url: str) -> Any:
        async with HaiperClient(url, SecretStr(TOKEN), breaker=breaker) as client:
            return await check_statuses(
                client, [f"id-{i}" for i in range(10)], RetryPolicy(base_delay=0.0)
            )

    with pytest.raises(ApiUnreachable) as caught:
        asyncio.run(go(f"http://127.0.0.1:{dead_port()}"))
    SEEN_ERRORS.append(caught.value)
    assert "unreachable" in str(caught.value) and "connection refused" in str(caught.value)

    def always_503(request: SeenRequest) -> Reply:
        return Reply(status=503, body=b"down")

    breaker = CircuitBreaker("http://127.0.0.1", threshold=3, min_seconds=0)
    with CannedServer(always_503) as api, pytest.raises(ApiUnreachable):
        asyncio.run(go(api.url))
    # Three failed requests open it; the other in-flight IDs were stopped before sending.
    assert len(api.requests) <= 3 + 16


def test_zz_no_error_ever_held_the_token() -> None:
    # Runs last in this module: every error the tests above provoked, as a reporter would see it.
    assert len(SEEN_ERRORS) >= 10
    for error in SEEN_ERRORS:
        text = repr(error) + str(error) + repr(vars(error))
        assert TOKEN not in text
        assert TOKEN.encode() not in pickle.dumps(error)
        assert error.__context__ is None or TOKEN not in repr(error.__context__)
        assert isinstance(error, InvalidResponse | HaiperSyncError)
