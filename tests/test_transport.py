"""`LeanTransport` over real TCP against a scripted asyncio server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import json
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Coroutine, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from haiper_sync.client import HaiperClient
from haiper_sync.transport import LeanTransport

T = TypeVar("T")

# Every scenario finishes in milliseconds; this only turns a hang into a failure.
SCENARIO_TIMEOUT = 2.0

CLOSE = "close"  # close the connection without answering the request
HANG = "hang"  # never answer; read until the client closes the connection


class Reply:
    """Response parts to send in order, then maybe close.

    An Event part waits until the test sets it; a float part pauses that many seconds.
    """

    def __init__(self, *parts: bytes | asyncio.Event | float, close: bool = False) -> None:
        self.parts = parts
        self.close = close


Action = Reply | bytes | str


class ScriptedServer:
    """An asyncio server answering each request it reads with the next scripted action.

    Actions are shared by all connections, in the order requests arrive. The server records
    the raw request heads (and bodies) and counts connections. Given ``tls``, it speaks HTTPS:
    a connection counts as accepted only once its TLS handshake has succeeded.
    """

    def __init__(self, actions: Iterable[Action], *, tls: ssl.SSLContext | None = None) -> None:
        self._actions = list(actions)
        self._tls = tls
        self.tls_versions: list[str | None] = []  # per accepted connection; None without TLS
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.accepted = 0
        self.open_now = 0
        self.max_open = 0
        self.client_eofs = 0  # connections the client closed while the server was reading
        self.parts_sent = 0
        self.finished = 0  # connections fully closed on the server side
        self._change = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "http" if self._tls is None else "https"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        # Handlers may be parked on a gate or a read; they hold the sockets.
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; it is re-checked whenever the server's state moves."""
        while not predicate():
            change = self._change
            await change.wait()

    def _changed(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.accepted += 1
        tls_object = writer.get_extra_info("ssl_object")
        self.tls_versions.append(None if tls_object is None else tls_object.version())
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        self._changed()
        try:
            await self._converse(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            # Cancelled only by __aexit__; returning normally keeps asyncio from logging it.
            pass
        finally:
            self.open_now -= 1
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()
            self.finished += 1
            self._changed()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                self.client_eofs += 1
                return
            self.heads.append(head)
            self.bodies.append(await reader.readexactly(_content_length(head)))
            self._changed()
            action = self._actions.pop(0) if self._actions else CLOSE
            if action == CLOSE:
                return
            if action == HANG:
                await reader.read()  # returns at EOF
                self.client_eofs += 1
                return
            reply = Reply(action) if isinstance(action, bytes) else action
            assert isinstance(reply, Reply)
            for part in reply.parts:
                if isinstance(part, asyncio.Event):
                    await part.wait()
                    continue
                if isinstance(part, float):
                    await asyncio.sleep(part)
                    continue
                writer.write(part)
                await writer.drain()
                self.parts_sent += 1
                self._changed()
            if reply.close:
                return


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def ok(body: bytes = b"ok", *headers: str, status: str = "200 OK") -> bytes:
    """A complete HTTP/1.1 response with a Content-Length."""
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def run(scenario: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(scenario, SCENARIO_TIMEOUT))


async def yield_to_loop(times: int = 10) -> None:
    """Let pending socket events (a peer's FIN) reach their protocols."""
    for _ in range(times):
        await asyncio.sleep(0)


def free_port() -> int:
    """A port nothing listens on: bound once, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# The fast path: get()


def test_get_sends_a_well_formed_head_and_returns_the_response() -> None:
    async def scenario() -> None:
        reply = ok(b'{"a": 1}', "X-Trace: t-1")
        async with ScriptedServer([reply]) as server, LeanTransport() as transport:
            headers = httpx.Headers(
                {"Authorization": "Bearer tok", "Accept": "application/json", "Host": "evil"}
            )
            endpoint = transport.endpoint(server.url + "/base/", headers)
            response = await transport.get(endpoint, "/path/x%2Fy?q=1")
        assert server.heads == [
            b"GET /base/path/x%2Fy?q=1 HTTP/1.1\r\n"
            + f"Host: 127.0.0.1:{server.port}\r\n".encode()
            + b"Authorization: Bearer tok\r\nAccept: application/json\r\n\r\n"
        ]
        assert response.status == 200
        assert response.body == b'{"a": 1}'
        assert response.header("x-trace") == "t-1"
        assert response.header("missing") is None

    run(scenario())


def test_get_returns_error_statuses_and_their_bodies() -> None:
    async def scenario() -> None:
        responses = [ok(b"slow down", "Retry-After: 3", status="429 Too Many Requests")]
        async with ScriptedServer(responses) as server, LeanTransport() as transport:
            endpoint = transport.endpoint(server.url, httpx.Headers())
            response = await transport.get(endpoint, "/x")
        assert server.heads[0].startswith(b"GET /x HTTP/1.1\r\n")
        assert (response.status, response.body) == (429, b"slow down")
        assert response.header("Retry-After") == "3"

    run(scenario())


# Connection reuse and limits


def test_sequential_requests_reuse_one_connection() -> None:
    async def scenario() -> None:
        async with ScriptedServer([ok(b"1"), ok(b"2"), ok(b"3")]) as server:
            async with LeanTransport() as transport:
                endpoint = transport.endpoint(server.url, httpx.Headers())
                bodies = [(await transport.get(endpoint, f"/{i}")).body for i in range(3)]
            assert bodies == [b"1", b"2", b"3"]
            assert [head.split(b" ")[1] for head in server.heads] == [b"/0", b"/1", b"/2"]
            assert server.accepted == 1

    run(scenario())


def test_concurrent_requests_never_open_more_than_max_connections() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        replies = [Reply(gate, ok(b"%d" % i)) for i in range(5)]
        async with ScriptedServer(replies) as server:
            async with LeanTransport(max_connections=2) as transport:
                endpoint = transport.endpoint(server.url, httpx.Headers())
                requests = asyncio.gather(*(transport.get(endpoint, "/") for _ in range(5)))
                await server.wait_until(lambda: len(server.heads) == 2)
                # A third connection, had one been opened, would have been accepted by now.
                await yield_to_loop(20)
                assert (server.accepted, len(server.heads)) == (2, 2)
                gate.set()
                responses = await requests
            assert sorted(r.body for r in responses) == [b"0", b"1", b"2", b"3", b"4"]
            assert (server.accepted, server.max_open, len(server.heads)) == (2, 2, 5)

    run(scenario())


# Connections the server closes


def test_connection_the_server_closed_while_idle_is_replaced() -> None:
    async def scenario() -> None:
        async with ScriptedServer([Reply(ok(b"one"), close=True), ok(b"two")]) as server:
            async with LeanTransport() as transport:
                endpoint = transport.endpoint(server.url, httpx.Headers())
                assert (await transport.get(endpoint, "/1")).body == b"one"
                # Server side fully closed; then the client's protocol gets to see the FIN.
                await server.wait_until(lambda: server.finished == 1)
                await yield_to_loop()
                assert (await transport.get(endpoint, "/2")).body == b"two"
            assert server.accepted == 2
            assert len(server.heads) == 2

    run(scenario())


def test_reused_connection_closed_before_any_answer_is_retried_on_a_new_one() -> None:
    # The race the retry exists for: the server drops a keep-alive connection just as our
    # request arrives. Closing right after reading the head makes it deterministic.
    async def scenario() -> None:
        async with ScriptedServer([ok(b"one"), CLOSE, ok(b"two")]) as server:
            async with LeanTransport() as transport:
                endpoint = transport.endpoint(server.url, httpx.Headers())
                assert (await transport.get(endpoint, "/1")).body == b"one"
                assert (await transport.get(endpoint, "/2")).body == b"two"
            assert server.accepted == 2
            assert [head.split(b" ")[1] for head in server.heads] == [b"/1", b"/2", b"/2"]

    run(scenario())


def test_fresh_connection_closed_without_answer_is_not_retried() -> None:
    async def scenario() -> None:
        async with ScriptedServer([CLOSE, ok()]) as server:
            async with LeanTransport() as transport:
                endpoint = transport.endpoint(server.url, httpx.Headers())
                with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
                    await transport.get(endpoint, "/")
            assert (server.accepted, len(server.heads)) == (1, 1)

    run(scenario())


def test_close_mid_body_raises_and_is_not_retried() -> None:
    truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10

    # On a reused connection, where a stale-connection retry would be allowed if no byte came.
    async def scenario() -> None:
        async with ScriptedServer([ok(), Reply(truncated, close=True), ok()]) as server:
            async with LeanTransport() as transport:
                endpoint = transport.endpoint(server.url, httpx.Headers())
                await transport.get(endpoint, "/1")
                with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                    await transport.get(endpoint, "/2")
            assert (server.accepted, len(server.heads)) == (1, 2)

    run(scenario())


# Response framing


def test_chunked_body_is_reassembled_and_the_connection_kept() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )

    async def scenario() -> None:
        async with ScriptedServer([chunked, ok(b"next")]) as server:
            async with LeanTransport() as transport:
                endpoint = transport.endpoint(server.url, httpx.Headers())
                first = await transport.get(endpoint, "/1")
                second = await transport.get(endpoint, "/2")
            assert (first.status, first.body) == (200, b"hello world")
            assert second.body == b"next"
            assert server.accepted == 1

    run(scenario())


def test_body_without_length_is_read_to_eof_and_the_connection_dropped() -> None:
    unframed = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"until the end" * 1000

    async def scenario() -> None:
        async with ScriptedServer([Reply(unframed, close=True), ok(b"next")]) as server:
            async with LeanTransport() as transport:
                endpoint = transport.endpoint(server.url, httpx.Headers())
                first = await transport.get(endpoint, "/1")
                second = await transport.get(endpoint, "/2")
            assert (first.status, first.body) == (200, b"until the end" * 1000)
            assert second.body == b"next"
            assert server.accepted == 2

    run(scenario())


def test_connection_close_response_is_not_pooled() -> None:
    async def scenario() -> None:
        async with ScriptedServer([ok(b"1", "Connection: close"), ok(b"2")]) as server:
            async with LeanTransport() as transport:
                endpoint = transport.endpoint(server.url, httpx.Headers())
                await transport.get(endpoint, "/1")
                # The client closes its side at once: the server reads EOF, not a new request.
                await server.wait_until(lambda: server.client_eofs == 1)
                assert (await transport.get(endpoint, "/2")).body == b"2"
            assert server.accepted == 2

    run(scenario())


# Failures


@pytest.mark.parametrize(
    "action",
    [
        HANG,
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    ],
    ids=["nothing", "part-of-head", "part-of-body"],
)
def test_silent_server_raises_read_timeout_and_drops_the_connection(action: Action) -> None:
    # Without `close`, the server goes back to reading the next request: it sees our EOF.
    async def scenario() -> None:
        transport = LeanTransport(read_timeout=0.05)
        async with ScriptedServer([action]) as server, transport:
            endpoint = transport.endpoint(server.url, httpx.Headers())
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await transport.get(endpoint, "/")
            assert time.monotonic() - started < 0.5
            await server.wait_until(lambda: server.client_eofs == 1)

    run(scenario())


def test_read_timeout_counts_silence_not_the_whole_response() -> None:
    # The one test that needs time to pass: 5 gaps of 0.04 s outlast a 0.12 s read timeout
    # in total, while no single gap comes close to it.
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    trickle = Reply(head, 0.04, b"a", 0.04, b"b", 0.04, b"c", 0.04, b"d", 0.04, b"e")

    async def scenario() -> None:
        transport = LeanTransport(read_timeout=0.12)
        async with ScriptedServer([trickle]) as server, transport:
            endpoint = transport.endpoint(server.url, httpx.Headers())
            started = time.monotonic()
            response = await transport.get(endpoint, "/")
            assert time.monotonic() - started > 0.12
        assert response.body == b"abcde"

    run(scenario())


def test_cancelled_request_closes_its_connection() -> None:
    async def scenario() -> None:
        async with ScriptedServer([ok(b"1"), HANG, ok(b"3")]) as server:
            async with LeanTransport() as transport:
                endpoint = transport.endpoint(server.url, httpx.Headers())
                await transport.get(endpoint, "/1")
                request = asyncio.create_task(transport.get(endpoint, "/2"))
                await server.wait_until(lambda: len(server.heads) == 2)
                request.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await request
                # Half a response may be on its way: the connection must not be reused.
                await server.wait_until(lambda: server.client_eofs == 1)
                assert (await transport.get(endpoint, "/3")).body == b"3"
            assert server.accepted == 2

    run(scenario())


def test_nothing_listening_raises_connect_error() -> None:
    async def scenario() -> None:
        async with LeanTransport(connect_timeout=1.0) as transport:
            endpoint = transport.endpoint(f"http://127.0.0.1:{free_port()}", httpx.Headers())
            with pytest.raises(httpx.ConnectError):
                await transport.get(endpoint, "/")

    run(scenario())


def test_malformed_response_raises_remote_protocol_error_without_retry() -> None:
    async def scenario() -> None:
        async with ScriptedServer([ok(), b"NOT HTTP\r\n\r\n", ok()]) as server:
            async with LeanTransport() as transport:
                endpoint = transport.endpoint(server.url, httpx.Headers())
                await transport.get(endpoint, "/1")
                with pytest.raises(httpx.RemoteProtocolError, match="malformed"):
                    await transport.get(endpoint, "/2")
                # The broken connection is closed, not pooled.
                await server.wait_until(lambda: server.client_eofs == 1)
            assert (server.accepted, len(server.heads)) == (1, 2)

    run(scenario())


# Content-Encoding

DOCUMENT = {"status": "success", "value": {"creation_id": "abc", "prompt": "p" * 200}}
PLAIN = json.dumps(DOCUMENT).encode()


@pytest.mark.parametrize(
    ("encoding", "compressed"),
    [("gzip", gzip.compress(PLAIN)), ("deflate", zlib.compress(PLAIN))],
)
def test_get_decodes_a_compressed_body(encoding: str, compressed: bytes) -> None:
    async def scenario() -> None:
        reply = ok(compressed, f"Content-Encoding: {encoding}")
        async with ScriptedServer([reply]) as server, LeanTransport() as transport:
            endpoint = transport.endpoint(server.url, httpx.Headers())
            response = await transport.get(endpoint, "/")
        assert response.body == PLAIN
        assert response.header("content-encoding") == encoding

    run(scenario())


@pytest.mark.parametrize(
    ("encoding", "body"), [("br", b"\x0b\x02\x80ok\x03"), ("gzip", b"not gzip at all")]
)
def test_get_rejects_an_undecodable_body(encoding: str, body: bytes) -> None:
    async def scenario() -> None:
        reply = ok(body, f"Content-Encoding: {encoding}")
        async with ScriptedServer([reply]) as server, LeanTransport() as transport:
            endpoint = transport.endpoint(server.url, httpx.Headers())
            with pytest.raises(httpx.DecodingError):
                await transport.get(endpoint, "/")

    run(scenario())


def test_httpx_client_gets_a_body_decoded_exactly_once() -> None:
    async def scenario() -> None:
        reply = ok(gzip.compress(PLAIN), "Content-Encoding: gzip", "Content-Type: application/json")
        client = httpx.AsyncClient(transport=LeanTransport())
        async with ScriptedServer([reply]) as server, client:
            response = await client.get(server.url + "/v1/x", params={"q": "a b"})
        assert server.heads[0].startswith(b"GET /v1/x?q=a+b HTTP/1.1\r\n")
        assert f"\r\nHost: 127.0.0.1:{server.port}\r\n".encode() in server.heads[0]
        assert response.status_code == 200
        assert response.http_version == "HTTP/1.1"
        assert response.content == PLAIN
        assert response.json() == DOCUMENT

    run(scenario())


def test_httpx_client_sends_a_request_body() -> None:
    async def scenario() -> None:
        client = httpx.AsyncClient(transport=LeanTransport())
        async with ScriptedServer([ok(b"created", status="201 Created")]) as server, client:
            response = await client.post(server.url + "/items", content=b"payload")
        assert server.heads[0].startswith(b"POST /items HTTP/1.1\r\n")
        assert b"\r\nContent-Length: 7\r\n" in server.heads[0]
        assert server.bodies == [b"payload"]
        assert (response.status_code, response.content) == (201, b"created")

    run(scenario())


# Closing


def test_aclose_closes_idle_connections_and_refuses_new_requests() -> None:
    async def scenario() -> None:
        async with ScriptedServer([ok(), ok()]) as server:
            transport = LeanTransport()
            endpoint = transport.endpoint(server.url, httpx.Headers())
            await transport.get(endpoint, "/")
            assert server.client_eofs == 0
            await transport.aclose()
            await server.wait_until(lambda: server.client_eofs == 1)
            with pytest.raises(RuntimeError, match="closed"):
                await transport.get(endpoint, "/")
            assert len(server.heads) == 1

    run(scenario())


# Edge cases found by review: a close during a request, HEAD, interim responses.


def test_aclose_during_a_request_does_not_open_a_new_connection() -> None:
    async def scenario() -> None:
        async with ScriptedServer([ok(b"one"), HANG, ok(b"after close")]) as server:
            transport = LeanTransport()
            endpoint = transport.endpoint(server.url, httpx.Headers())
            await transport.get(endpoint, "/1")
            request = asyncio.create_task(transport.get(endpoint, "/2"))
            await server.wait_until(lambda: len(server.heads) == 2)
            await transport.aclose()
            outcome = (await asyncio.gather(request, return_exceptions=True))[0]
            assert server.accepted == 1, "a connection was opened after aclose()"
            assert isinstance(outcome, httpx.TransportError | RuntimeError), outcome

    run(scenario())


def test_head_request_through_httpx_client_completes() -> None:
    async def scenario() -> None:
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
        async with ScriptedServer([reply]) as server:
            transport = LeanTransport(read_timeout=0.05)
            async with httpx.AsyncClient(transport=transport) as client:
                response = await client.head(server.url + "/")
        assert (response.status_code, response.content) == (200, b"")

    run(scenario())


def test_interim_1xx_response_is_skipped() -> None:
    interim = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"

    async def scenario() -> None:
        final_may_go = asyncio.Event()
        reply = Reply(interim, final_may_go, ok(b"final"))
        async with ScriptedServer([reply]) as server, LeanTransport() as transport:
            endpoint = transport.endpoint(server.url, httpx.Headers())
            request = asyncio.create_task(transport.get(endpoint, "/"))
            # The interim response reaches the client in a segment of its own.
            await server.wait_until(lambda: server.parts_sent == 1)
            await yield_to_loop()
            final_may_go.set()
            response = await request
        assert (response.status, response.body) == (200, b"final")

    run(scenario())


def test_an_endpoint_never_shows_its_headers() -> None:
    transport = LeanTransport()
    endpoint = transport.endpoint(
        "http://127.0.0.1:9/base", httpx.Headers({"Authorization": "Bearer sk-canary"})
    )
    assert b"sk-canary" in endpoint.header_block
    assert "sk-canary" not in repr(endpoint)


def test_line_breaks_in_a_header_or_target_are_refused_before_sending() -> None:
    transport = LeanTransport()
    with pytest.raises(ValueError, match="Authorization") as caught:
        transport.endpoint(
            "http://127.0.0.1:9", httpx.Headers({"Authorization": "Bearer k\r\nX-Evil: 1"})
        )
    assert "Evil" not in str(caught.value)  # the value may be a secret: never echoed
    endpoint = transport.endpoint("http://127.0.0.1:9", httpx.Headers())
    for path in ("/a b", "/a\r\nHost: evil", "/a\x00"):
        with pytest.raises(ValueError, match="unsafe request target"):
            asyncio.run(transport.get(endpoint, path))


# HTTPS: a throwaway CA signs certificates for IP addresses; real TLS handshakes on 127.0.0.1.


@dataclass(frozen=True)
class Pki:
    """PEM files of a test CA and of two server certificates it signed (one shared key)."""

    ca: Path
    server_chain: Path  # leaf for IP 127.0.0.1, then the CA
    other_address_chain: Path  # leaf for IP 127.0.0.2 only
    server_key: Path

    def server_context(self, chain: Path | None = None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain or self.server_chain, self.server_key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A default (verifying) client context that trusts the test CA."""
        return ssl.create_default_context(cafile=self.ca)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    # EC P-256 keys: generating them takes microseconds, RSA 2048 up to half a second.
    directory = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("haiper-sync test CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())

    def leaf(address: str) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(_name("haiper-sync test server"))
            .issuer_name(ca_name)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )

    def write(name: str, *certificates: x509.Certificate) -> Path:
        path = directory / name
        path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates))
        return path

    key_path = directory / "server.key"
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Pki(
        ca=write("ca.pem", ca_cert),
        server_chain=write("server.pem", leaf("127.0.0.1"), ca_cert),
        other_address_chain=write("other.pem", leaf("127.0.0.2"), ca_cert),
        server_key=key_path,
    )


def test_https_get_verifies_the_server_and_reuses_one_tls_connection(pki: Pki) -> None:
    async def scenario() -> None:
        server = ScriptedServer(
            [ok(b"first"), ok(b"second", "X-Trace: t-2")], tls=pki.server_context()
        )
        transport = LeanTransport(ssl_context=pki.client_context())
        async with server, transport:
            assert server.url.startswith("https://127.0.0.1:")
            headers = httpx.Headers({"Authorization": "Bearer tok", "Accept": "application/json"})
            endpoint = transport.endpoint(server.url + "/v1", headers)
            first = await transport.get(endpoint, "/a")
            second = await transport.get(endpoint, "/b?q=1")
        assert (first.status, first.body) == (200, b"first")
        assert (second.status, second.body, second.header("x-trace")) == (200, b"second", "t-2")
        # One handshake, then both requests on that TLS connection.
        assert server.accepted == 1
        assert len(server.tls_versions) == 1
        assert server.tls_versions[0] in {"TLSv1.2", "TLSv1.3"}
        rest = f"Host: 127.0.0.1:{server.port}\r\n".encode() + (
            b"Authorization: Bearer tok\r\nAccept: application/json\r\n\r\n"
        )
        assert server.heads == [
            b"GET /v1/a HTTP/1.1\r\n" + rest,
            b"GET /v1/b?q=1 HTTP/1.1\r\n" + rest,
        ]

    run(scenario())


@pytest.mark.parametrize(
    "case", ["ca-not-trusted", "default-context", "certificate-for-another-address"]
)
def test_https_refuses_a_server_it_cannot_verify(pki: Pki, case: str) -> None:
    # "default-context": LeanTransport builds its own verifying context from the system store.
    client_context = {
        "ca-not-trusted": ssl.create_default_context(),
        "default-context": None,
        "certificate-for-another-address": pki.client_context(),
    }[case]
    chain = pki.other_address_chain if case == "certificate-for-another-address" else None

    async def scenario() -> None:
        server = ScriptedServer([ok(b"must not be served")], tls=pki.server_context(chain))
        transport = LeanTransport(ssl_context=client_context)
        async with server, transport:
            headers = httpx.Headers({"Authorization": "Bearer sk-canary"})
            endpoint = transport.endpoint(server.url + "/v1", headers)
            with pytest.raises(httpx.ConnectError, match=r"\(SSLCertVerificationError\)"):
                await transport.get(endpoint, "/a")
        # The handshake never completed: no connection was handed over, no head was read.
        assert (server.accepted, server.heads) == (0, [])

    run(scenario())


def test_haiper_client_gets_a_status_over_https(pki: Pki) -> None:
    body = b'{"status":"success","value":{"status":"succeed","progress":1}}'

    async def scenario() -> None:
        reply = ok(body, "Content-Type: application/json")
        async with ScriptedServer([reply], tls=pki.server_context()) as server:
            transport = LeanTransport(ssl_context=pki.client_context())
            async with HaiperClient(
                server.url, SecretStr("sk-test"), transport=transport
            ) as client:
                status = await client.get_status("job_1")
        assert status.status == "success"
        assert status.value is not None
        assert (status.value.status, status.value.progress) == ("succeed", 1)
        assert server.accepted == 1
        assert server.heads[0].startswith(b"GET /v1/jobs/job_1/status HTTP/1.1\r\n")
        assert f"\r\nHost: 127.0.0.1:{server.port}\r\n".encode() in server.heads[0]
        assert b"\r\nAuthorization: Bearer sk-test\r\n" in server.heads[0]

    run(scenario())
