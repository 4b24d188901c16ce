"""A lean HTTP/1.1 transport for httpx: keep-alive connections on asyncio protocols, httptools.

httpx's default stack (httpx client → httpcore pool → h11 → anyio streams) costs about 2 ms of
CPU per small request on this project's 2-core machine, more than the whole run may spend. This
transport does the same job for the requests haiper-sync sends (small requests, small complete
responses) in a fraction of that: the request head is one ``write``, the response is parsed by
httptools (C, the parser uvicorn uses) as bytes arrive, and a connection knows it was closed
the moment the peer closes it, so the pool never probes sockets before reuse.

It plugs in where any ``httpx.AsyncBaseTransport`` does, so tests can still hand the client an
``httpx.MockTransport`` instead. Responses are read whole into memory (no streaming).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import zlib
from dataclasses import dataclass, field
from typing import cast

import httptools
import httpx

# A reused keep-alive connection the server closed an instant before our request reached it
# fails before any byte of a response arrives; a GET is then safe to send once more.
_STALE_RETRIES = 1


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int


def _origin(url: httpx.URL) -> _Origin:
    return _Origin(url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))


@dataclass(frozen=True)
class Endpoint:
    """An origin, a base path and encoded headers, prepared once by `LeanTransport.endpoint`."""

    origin: _Origin
    base_path: bytes
    # Holds the Authorization header: never in a repr, so never in a log or traceback.
    header_block: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class RawResponse:
    """A whole response: status, raw headers, body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), decoded as Latin-1."""
        wanted = name.lower().encode("latin-1")
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: sends a request head, collects one response at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float) -> None:
        self._loop = loop
        self._read_timeout = read_timeout
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_data = 0.0
        self.closed = False
        self.closed_by_us = False
        self.reused = False
        self._head_request = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.received = False
        self.headers_done = False
        self.complete = False
        self.keep_alive = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        self._last_data = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response ({exc})"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if exc is None and self.headers_done and not self._framed():
            # A response delimited by the end of the connection is complete now.
            self.complete = True
            self._waiter.set_result(None)
            return
        if self.closed_by_us:
            message = "connection closed by the client (transport closing)"
        else:
            message = "server disconnected" + (
                "" if self.received else " without sending a response"
            )
        self._fail(httpx.RemoteProtocolError(message) if exc is None else httpx.ReadError(message))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.status = self._parser.get_status_code()
        if self._head_request and self.status >= 200:
            # A response to HEAD has no body whatever its headers say; httptools cannot be told
            # so, so the connection is not reused.
            self.complete = True
            self._finish()

    def _finish(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200 and self.status != 101:
            # An interim response (100 Continue, 103 Early Hints): the real one follows.
            received = self.received
            self._reset()
            self.received = received
            return
        if self.complete:
            return  # a HEAD response, finished at its headers
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()
        self._finish()

    # Used by the transport

    async def send(self, head: bytes, *, head_request: bool = False) -> None:
        """Write a request and wait until its response is complete."""
        assert self._transport is not None
        self._reset()
        self._head_request = head_request
        self._waiter = self._loop.create_future()
        self._last_data = self._loop.time()
        self._timer = self._loop.call_at(self._last_data + self._read_timeout, self._check_idle)
        try:
            self._transport.write(head)
            await self._waiter
        finally:
            self._timer.cancel()
            self._waiter = None

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if not self.closed:
            self.closed_by_us = True
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def _framed(self) -> bool:
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" in names or b"transfer-encoding" in names

    def _check_idle(self) -> None:
        # Re-armed rather than reset on every chunk of data: one timer per request.
        idle_until = self._last_data + self._read_timeout
        if self._loop.time() < idle_until:
            self._timer = self._loop.call_at(idle_until, self._check_idle)
            return
        self._fail(httpx.ReadTimeout(f"no data for {self._read_timeout:g} s"))
        self.close()

    def _fail(self, error: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)


class LeanTransport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 transport for small request/response exchanges.

    Args:
        max_connections: Connections open at once per origin; further requests wait.
        connect_timeout: Seconds to open a connection (TLS handshake included).
        read_timeout: Seconds without a byte of the response before giving up.
        ssl_context: Used for ``https`` URLs.
    """

    def __init__(
        self,
        *,
        max_connections: int = 64,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._ssl_context = ssl_context
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._slots: dict[_Origin, asyncio.Semaphore] = {}
        self._open: set[_Connection] = set()
        self._closed = False

    def endpoint(self, base_url: str, headers: httpx.Headers) -> Endpoint:
        """Encode an origin and a set of headers once, for many `get` calls."""
        url = httpx.URL(base_url)
        origin = _origin(url)
        host = url.netloc.decode("ascii")
        block = [b"Host: ", host.encode("ascii"), b"\r\n"]
        for name, value in headers.raw:
            _check_header(name, value)
            if name.lower() != b"host":
                block += (name, b": ", value, b"\r\n")
        block.append(b"\r\n")
        base_path = url.raw_path.partition(b"?")[0].rstrip(b"/")
        return Endpoint(origin, base_path, b"".join(block))

    async def get(self, endpoint: Endpoint, path: str) -> RawResponse:
        """``GET`` ``path`` (ASCII, already escaped) below the endpoint's base URL."""
        target = endpoint.base_path + path.encode("ascii")
        if _UNSAFE_TARGET.search(target):
            raise ValueError(f"unsafe request target {target!r}")
        head = b"GET " + target + b" HTTP/1.1\r\n" + endpoint.header_block
        return _decoded(await self._exchange(endpoint.origin, head, None))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on a pooled connection and return the whole response."""
        head_request = request.method == "HEAD"
        raw = await self._exchange(_origin(request.url), _head(request), request, head_request)
        return httpx.Response(
            raw.status,
            headers=raw.headers,
            content=raw.body,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _exchange(
        self,
        origin: _Origin,
        head: bytes,
        request: httpx.Request | None,
        head_request: bool = False,
    ) -> RawResponse:
        if self._closed:
            raise RuntimeError("transport is closed")
        slots = self._slots.get(origin)
        if slots is None:
            slots = self._slots[origin] = asyncio.Semaphore(self._max_connections)
        async with slots:
            attempt = 0
            while True:
                connection = await self._checkout(origin, request)
                if self._closed:  # closed while we were connecting
                    self._discard(connection)
                    raise RuntimeError("transport is closed")
                try:
                    await connection.send(head, head_request=head_request)
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    self._discard(connection)
                    stale = connection.reused and not connection.received
                    if stale and not connection.closed_by_us and attempt < _STALE_RETRIES:
                        attempt += 1
                        continue
                    raise
                except BaseException:
                    # Timed out or cancelled mid-response: the connection's state is unknown.
                    self._discard(connection)
                    raise
                raw = RawResponse(connection.status, connection.headers, b"".join(connection.body))
                if connection.keep_alive and not connection.closed and not self._closed:
                    connection.reused = True
                    self._idle.setdefault(origin, []).append(connection)
                else:
                    self._discard(connection)
                return raw

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def _checkout(self, origin: _Origin, request: httpx.Request | None) -> _Connection:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
            self._open.discard(connection)
        return await self._connect(origin, request)

    async def _connect(self, origin: _Origin, request: httpx.Request | None) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = origin.scheme == "https"
        if tls and self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop, self._read_timeout),
                    origin.host,
                    origin.port,
                    ssl=self._ssl_context if tls else None,
                    server_hostname=origin.host if tls else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"connecting to {origin.host}:{origin.port} timed out", request=request
            ) from None
        except OSError as exc:
            raise httpx.ConnectError(
                f"cannot connect to {origin.host}:{origin.port} ({type(exc).__name__})",
                request=request,
            ) from None
        self._open.add(connection)
        return connection

    async def aclose(self) -> None:
        """Close every connection."""
        self._closed = True
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()


# Bytes that would let a value end its line and start another header or request.
_UNSAFE_TARGET = re.compile(rb"[\x00-\x20\x7f]")
_UNSAFE_VALUE = re.compile(rb"[\x00\r\n]")


def _check_header(name: bytes, value: bytes) -> None:
    if _UNSAFE_VALUE.search(name) or _UNSAFE_VALUE.search(value) or b":" in name:
        # The value may be a secret: name the header only.
        raise ValueError(f"header {name.decode('latin-1')!r} holds a line break or NUL")


def _decoded(raw: RawResponse) -> RawResponse:
    encoding = (raw.header("content-encoding") or "identity").strip().lower().encode()
    if encoding == b"identity":
        return raw
    return RawResponse(raw.status, raw.headers, _decode(encoding, raw.body))


def _decode(encoding: bytes, body: bytes) -> bytes:
    # We ask for identity; this only covers a server that compresses anyway.
    try:
        if encoding in (b"gzip", b"x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == b"deflate":
            return zlib.decompress(body)
    except zlib.error as exc:
        raise httpx.DecodingError(f"cannot decode {encoding.decode()} body ({exc})") from None
    raise httpx.DecodingError(f"unsupported content-encoding {encoding.decode(errors='replace')}")


def _head(request: httpx.Request) -> bytes:
    """The request line and headers (and body, if any) as bytes to write."""
    content = request.content
    target = request.url.raw_path
    if _UNSAFE_TARGET.search(target):
        raise ValueError(f"unsafe request target {target!r}")
    lines = [request.method.encode(), b" ", target, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        _check_header(name, value)
        lines += (name, b": ", value, b"\r\n")
    if content and "content-length" not in request.headers:
        lines.append(b"Content-Length: %d\r\n" % len(content))
    lines.append(b"\r\n")
    return b"".join(lines) + content
