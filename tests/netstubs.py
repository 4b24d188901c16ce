"""Local stand-ins for real networks: canned HTTP servers, a proxy, black holes, DNS, TLS."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import http
import ipaddress
import itertools
import select
import socket
import ssl
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme

__all__ = [
    "CannedServer",
    "ForwardProxy",
    "NginxLikeTlsPort",
    "PrivateCA",
    "Reply",
    "SeenRequest",
    "TlsFiles",
    "blackhole",
    "dead_port",
    "fake_dns",
    "private_ca",
    "serve_beside_blackhole",
]

# Every wait in this module is bounded so a broken test fails instead of hanging the run.
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
_HEAD_LIMIT = 1 << 20


# --------------------------------------------------------------------------------------------
# HTTP/1.1 wire helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeenRequest:
    """One request as the server received it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    version: str = "HTTP/1.1"
    conn: int = 0  # serial number of the connection it arrived on (1, 2, ...)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((v for n, v in self.headers if n.lower() == wanted), None)

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]


@dataclass
class Reply:
    """What a ``CannedServer`` handler answers."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    chunked: bool = False
    close: bool = False


def _parse_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    """Split a request head into method, target, version and header pairs."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise ValueError(f"bad request line: {lines[0]!r}")
    method, target, version = parts
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line: {line!r}")
        headers.append((name.strip(), value.strip()))
    return method, target, version, headers


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive), or None."""
    wanted = name.lower()
    return next((v for n, v in headers if n.lower() == wanted), None)


def _has_token(headers: list[tuple[str, str]], name: str, token: str) -> bool:
    """Whether a comma-separated header such as Connection lists ``token``."""
    return any(
        n.lower() == name.lower() and token in (t.strip().lower() for t in v.split(","))
        for n, v in headers
    )


async def _read_body(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    headers: list[tuple[str, str]],
) -> bytes:
    """Read a request body framed by Content-Length or chunked encoding."""
    if (_get(headers, "expect") or "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    if _has_token(headers, "transfer-encoding", "chunked"):
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Trailers end at an empty line.
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = _get(headers, "content-length")
    return await reader.readexactly(int(length)) if length else b""


def _status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason>`` with CRLF."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")


def _encode_head(status: int, headers: list[tuple[str, str]]) -> bytes:
    """Status line plus headers plus the blank line."""
    lines = b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in headers)
    return _status_line(status) + lines + b"\r\n"


def _chunks(body: bytes, parts: int = 3) -> list[bytes]:
    """``body`` in chunked transfer coding, split into a few chunks plus the last-chunk."""
    step = max(1, -(-len(body) // parts))
    out = [
        f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        for piece in (body[i : i + step] for i in range(0, len(body), step))
    ]
    out.append(b"0\r\n\r\n")
    return out


def _simple_response(status: int, text: str, extra: list[tuple[str, str]] | None = None) -> bytes:
    """A complete small response that closes the connection."""
    body = text.encode()
    headers = [
        *(extra or []),
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ]
    return _encode_head(status, headers) + body


# --------------------------------------------------------------------------------------------
# An asyncio loop in a daemon thread, serving one listening socket
# --------------------------------------------------------------------------------------------


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); raises OSError if the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # SO_REUSEADDR only skips TIME_WAIT leftovers; Linux still refuses a second listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def _quiet_loop_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Drop network noise (e.g. a client refusing our cert); report anything else."""
    exc = context.get("exception")
    if isinstance(exc, OSError | asyncio.CancelledError | asyncio.IncompleteReadError):
        return
    if "SSL" in str(context.get("message", "")):
        return
    loop.default_exception_handler(context)


class _LoopThread:
    """Runs ``_serve_conn`` for each connection accepted on a socket, in a private loop."""

    _name = "netstub"

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        self._host = host
        self._want_port = port
        self._ssl = ssl_context
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._conn_serial = itertools.count(1)
        self._conn_count = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Bind (raising OSError if the port is taken) and start serving."""
        if self._thread is not None:
            raise RuntimeError("already started (instances are single-use)")
        self._sock = _bind(self._host, self._want_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            raise RuntimeError(f"{self._name} did not start within {_START_TIMEOUT} s")
        if self._error is not None:
            self._thread.join(_STOP_TIMEOUT)
            raise self._error

    def stop(self) -> None:
        """Stop serving, drop every connection and close all sockets."""
        if self._loop is None or self._thread is None:
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_STOP_TIMEOUT)
        if self._sock is not None:
            self._sock.close()  # already closed by the server unless startup failed

    def __enter__(self) -> Any:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None and self._sock is not None
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(_quiet_loop_errors)
        try:
            server = loop.run_until_complete(
                asyncio.start_server(
                    self._accept,
                    sock=self._sock,
                    ssl=self._ssl,
                    limit=_HEAD_LIMIT,
                    # Bound TLS setup/teardown so a silent peer cannot pin a connection task.
                    ssl_handshake_timeout=5.0 if self._ssl else None,
                    ssl_shutdown_timeout=2.0 if self._ssl else None,
                )
            )
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown(server))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self, server: asyncio.Server) -> None:
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.wait_for(server.wait_closed(), _STOP_TIMEOUT)
        self._on_shutdown()

    def _on_shutdown(self) -> None:
        """Hook for subclasses to release their own resources."""

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self._conn_count += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Without NODELAY, Nagle + delayed ACK add ~40 ms to every keep-alive request.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await self._serve_conn(reader, writer, next(self._conn_serial))
        except (OSError, EOFError, ValueError, asyncio.LimitOverrunError):
            pass  # a peer vanishing or talking nonsense is routine for a test stub
        finally:
            writer.close()  # flushes what is buffered, then closes
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _serve_conn(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int
    ) -> None:
        raise NotImplementedError

    # -- addresses ----------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the listening socket is bound to."""
        if self._sock is None:
            raise RuntimeError("not started")
        return str(self._sock.getsockname()[0])

    @property
    def port(self) -> int:
        """The port the listening socket is bound to."""
        if self._sock is None:
            raise RuntimeError("not started")
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL of the server, without a trailing slash."""
        scheme = "https" if self._ssl is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def connection_count(self) -> int:
        """How many connections were accepted (TLS failures before the handshake excluded)."""
        return self._conn_count


# --------------------------------------------------------------------------------------------
# 1. CannedServer
# --------------------------------------------------------------------------------------------


class CannedServer(_LoopThread):
    """HTTP/1.1 server answering each request with ``handler(request)``.

    The handler runs in a worker thread (so a slow handler does not stall other connections);
    it must be thread-safe and must return. An exception in it becomes a 500 reply.
    """

    _name = "canned-server"

    def __init__(
        self,
        handler: Callable[[SeenRequest], Reply],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(host, port, ssl_context)
        self._handler = handler
        self._lock = threading.Lock()
        self._requests: list[SeenRequest] = []
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="canned-handler")

    def __enter__(self) -> CannedServer:
        self.start()
        return self

    @property
    def requests(self) -> list[SeenRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def _on_shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _serve_conn(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # client closed between requests
            method, target, version, headers = _parse_head(head)
            body = await _read_body(reader, writer, headers)
            request = SeenRequest(method, target, headers, body, version, conn)
            with self._lock:
                self._requests.append(request)
            try:
                reply = await loop.run_in_executor(self._pool, self._handler, request)
            except Exception:
                reply = Reply(500, body=traceback.format_exc().encode(), close=True)
            await self._send(writer, method, reply)
            client_close = _has_token(headers, "connection", "close") or (
                version == "HTTP/1.0" and not _has_token(headers, "connection", "keep-alive")
            )
            if reply.close or client_close:
                return

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, method: str, reply: Reply) -> None:
        headers = list(reply.headers)
        names = {n.lower() for n, _ in headers}
        bodyless_status = reply.status in (204, 304) or 100 <= reply.status < 200
        send_body = not bodyless_status and method != "HEAD"
        if reply.chunked and not bodyless_status:
            if "transfer-encoding" not in names:
                headers.append(("Transfer-Encoding", "chunked"))
        elif "content-length" not in names and not bodyless_status:
            headers.append(("Content-Length", str(len(reply.body))))
        if reply.close and "connection" not in names:
            headers.append(("Connection", "close"))
        writer.write(_encode_head(reply.status, headers))
        if send_body and reply.chunked:
            # Separate writes so the chunks really arrive as separate pieces.
            for piece in _chunks(reply.body):
                writer.write(piece)
                await writer.drain()
        elif send_body:
            writer.write(reply.body)
        await writer.drain()


# --------------------------------------------------------------------------------------------
# 2. ForwardProxy
# --------------------------------------------------------------------------------------------

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}
)


class ForwardProxy(_LoopThread):
    """HTTP forward proxy: absolute-form requests (one per connection) and CONNECT tunnels."""

    _name = "forward-proxy"

    def __init__(
        self,
        hosts: dict[str, tuple[str, int]] | None = None,
        *,
        require_auth: tuple[str, str] | None = None,
        connect_timeout: float = 5.0,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(host, 0, None)
        # Keys are "name" or "name:port" (the latter wins); values are where to really connect.
        self._hosts = {k.lower(): v for k, v in (hosts or {}).items()}
        self._auth = (
            "Basic " + base64.b64encode(f"{require_auth[0]}:{require_auth[1]}".encode()).decode()
            if require_auth
            else None
        )
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._seen: list[str] = []

    def __enter__(self) -> ForwardProxy:
        self.start()
        return self

    @property
    def seen(self) -> list[str]:
        """A snapshot of request lines without the version, e.g. ``CONNECT a.test:443``."""
        with self._lock:
            return list(self._seen)

    @property
    def count(self) -> int:
        """How many requests the proxy received (including refused ones)."""
        with self._lock:
            return len(self._seen)

    def _resolve(self, host: str, port: int) -> tuple[str, int]:
        host = host.lower().strip("[]")
        return self._hosts.get(f"{host}:{port}") or self._hosts.get(host) or (host, port)

    async def _open(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        real_host, real_port = self._resolve(host, port)
        return await asyncio.wait_for(
            asyncio.open_connection(real_host, real_port, limit=_HEAD_LIMIT),
            self._connect_timeout,
        )

    async def _serve_conn(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _version, headers = _parse_head(head)
        with self._lock:
            self._seen.append(f"{method} {target}")
        if self._auth is not None and _get(headers, "proxy-authorization") != self._auth:
            writer.write(
                _simple_response(
                    407,
                    "proxy authentication required\n",
                    [("Proxy-Authenticate", 'Basic realm="test"')],
                )
            )
            await writer.drain()
            return
        if method == "CONNECT":
            await self._tunnel(reader, writer, target)
        else:
            await self._forward(reader, writer, method, target, headers)

    async def _tunnel(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: str
    ) -> None:
        host, sep, port_text = target.rpartition(":")
        if not sep or not port_text.isdigit():
            writer.write(_simple_response(400, f"bad CONNECT target {target!r}\n"))
            await writer.drain()
            return
        try:
            up_reader, up_writer = await self._open(host, int(port_text))
        except (OSError, TimeoutError) as exc:
            writer.write(_simple_response(502, f"cannot reach {target}: {exc!r}\n"))
            await writer.drain()
            return
        try:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            pipes = {
                asyncio.create_task(_pipe(reader, up_writer)),
                asyncio.create_task(_pipe(up_reader, writer)),
            }
            try:
                # Either side closing ends the tunnel.
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in pipes:
                    task.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            up_writer.close()

    async def _forward(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
    ) -> None:
        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            writer.write(_simple_response(400, f"not an absolute http URL: {target!r}\n"))
            await writer.drain()
            return
        body = await _read_body(reader, writer, headers)
        try:
            up_reader, up_writer = await self._open(url.hostname, url.port or 80)
        except (OSError, TimeoutError) as exc:
            writer.write(_simple_response(502, f"cannot reach {url.netloc}: {exc!r}\n"))
            await writer.drain()
            return
        try:
            framed = _get(headers, "content-length") is not None or _has_token(
                headers, "transfer-encoding", "chunked"
            )
            out = [
                (n, v)
                for n, v in headers
                if n.lower() not in _HOP_BY_HOP
                and not n.lower().startswith("proxy-")
                and n.lower() not in ("content-length", "transfer-encoding")
            ]
            if _get(out, "host") is None:
                out.insert(0, ("Host", url.netloc))
            if framed:
                out.append(("Content-Length", str(len(body))))  # the body was de-chunked
            out.append(("Connection", "close"))
            origin = url.path or "/"
            if url.query:
                origin += "?" + url.query
            lines = b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in out)
            up_writer.write(f"{method} {origin} HTTP/1.1\r\n".encode("latin-1") + lines + b"\r\n")
            up_writer.write(body)
            await up_writer.drain()
            try:
                resp_head = await up_reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, OSError) as exc:
                writer.write(_simple_response(502, f"no response from {url.netloc}: {exc!r}\n"))
                await writer.drain()
                return
            # Force Connection: close into the relayed head: we close after this response.
            status_line, *resp_lines = resp_head.decode("latin-1").split("\r\n")
            kept = [
                line for line in resp_lines if line and not line.lower().startswith("connection:")
            ]
            new_head = "\r\n".join([status_line, *kept, "Connection: close", "", ""])
            writer.write(new_head.encode("latin-1"))
            await writer.drain()
            # Upstream was asked to close, so its EOF marks the end of the body.
            await _pipe(up_reader, writer)
        finally:
            up_writer.close()


# What nginx answers a plain HTTP request on its TLS port (ngx_http_request.c, 400 page).
PLAIN_HTTP_ON_TLS_PORT = (
    b"<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n"
    b"<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n"
    b"<center>The plain HTTP request was sent to HTTPS port</center>\r\n"
    b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


class NginxLikeTlsPort(_LoopThread):
    """A TLS port in front of a TLS ``CannedServer`` that, like nginx, answers plain HTTP 400.

    asyncio's own TLS server just drops a connection that does not start with a handshake;
    nginx (and most TLS front ends) answer it, so ``http://`` to a TLS port gets a 400 per
    request. A connection whose first byte is a TLS record is piped to ``backend`` untouched.
    """

    _name = "nginx-like-tls-port"

    def __init__(self, backend: CannedServer, *, host: str = "127.0.0.1") -> None:
        super().__init__(host, 0, None)
        self._backend = backend
        self._lock = threading.Lock()
        self._plain: list[str] = []

    def __enter__(self) -> NginxLikeTlsPort:
        self.start()
        return self

    @property
    def url(self) -> str:
        """The port's ``https://`` URL."""
        return f"https://{self.host}:{self.port}"

    @property
    def plain_requests(self) -> list[str]:
        """The request lines of the plain HTTP requests answered 400, in arrival order."""
        with self._lock:
            return list(self._plain)

    async def _serve_conn(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int
    ) -> None:
        first = await reader.read(1)
        if not first:
            return
        if first == b"\x16":  # a TLS handshake record
            up_reader, up_writer = await asyncio.open_connection(
                self._backend.host, self._backend.port, limit=_HEAD_LIMIT
            )
            try:
                up_writer.write(first)
                pipes = {
                    asyncio.create_task(_pipe(reader, up_writer)),
                    asyncio.create_task(_pipe(up_reader, writer)),
                }
                try:
                    await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in pipes:
                        task.cancel()
                    await asyncio.gather(*pipes, return_exceptions=True)
            finally:
                up_writer.close()
            return
        head = first + await reader.readuntil(b"\r\n\r\n")
        with self._lock:
            self._plain.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
        headers = [
            ("Server", "nginx"),
            ("Content-Type", "text/html"),
            ("Content-Length", str(len(PLAIN_HTTP_ON_TLS_PORT))),
            ("Connection", "close"),
        ]
        writer.write(_encode_head(400, headers) + PLAIN_HTTP_ON_TLS_PORT)
        await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes from ``reader`` to ``writer`` until EOF or a connection error."""
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


# --------------------------------------------------------------------------------------------
# 3. Black holes and 4. dead ports
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def blackhole(host: str = "127.0.0.2") -> Iterator[int]:
    """Yield a port on ``host`` where TCP connects hang until the client's timeout."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind((host, 0))
        # Never accepted: with backlog 0 the accept queue holds one connection, and Linux then
        # silently drops further SYNs, so later connects retransmit until they time out.
        listener.listen(0)
        port = int(listener.getsockname()[1])
        for _ in range(2):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            fillers.append(filler)
            filler.setblocking(False)
            filler.connect_ex((host, port))
            if len(fillers) == 1:
                # The first must be established (queued) before the rest is dropped reliably.
                select.select([], [filler], [], 1.0)
        yield port
    finally:
        for sock in fillers:
            sock.close()
        listener.close()


@contextlib.contextmanager
def serve_beside_blackhole(
    handler: Callable[[SeenRequest], Reply], *, tries: int = 5
) -> Iterator[tuple[int, CannedServer]]:
    """Yield (P, server): 127.0.0.2:P is a black hole, 127.0.0.1:P serves ``handler``."""
    last_error: OSError | None = None
    for _ in range(tries):
        with blackhole("127.0.0.2") as port:
            server = CannedServer(handler, host="127.0.0.1", port=port)
            try:
                server.start()
            except OSError as exc:  # P is taken on 127.0.0.1: try another black hole
                last_error = exc
                continue
            try:
                yield port, server
            finally:
                server.stop()
            return
    raise RuntimeError(f"no port free on both 127.0.0.1 and 127.0.0.2: {last_error!r}")


def dead_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` with nothing listening (connects are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# 5. Fake DNS
# --------------------------------------------------------------------------------------------

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
            return real(host, port, family, type, proto, flags)
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


# --------------------------------------------------------------------------------------------
# 6. TLS
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for one server certificate issued by a ``PrivateCA``."""

    cert_pem: Path  # leaf then chain
    key_pem: Path
    ca_pem: Path  # what a client should trust


class PrivateCA:
    """A throwaway CA (trustme) writing its PEM files under a temporary directory."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()
        self.ca_pem = self._dir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_pem))
        self._serial = itertools.count(1)

    def issue(self, *names: str, expired: bool = False) -> TlsFiles:
        """Write a leaf cert for ``names`` (already expired if asked) and return its files."""
        if not names:
            raise ValueError("give at least one DNS name or IP address")
        validity: dict[str, dt.datetime] = {}
        if expired:
            now = dt.datetime.now(dt.UTC)
            validity = {
                "not_before": now - dt.timedelta(days=30),
                "not_after": now - dt.timedelta(days=1),
            }
        leaf = self.ca.issue_cert(*names, **validity)
        n = next(self._serial)
        files = TlsFiles(self._dir / f"leaf{n}.pem", self._dir / f"leaf{n}.key", self.ca_pem)
        files.cert_pem.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        files.key_pem.write_bytes(leaf.private_key_pem.bytes())
        return files

    def server_context(self, *names: str, expired: bool = False) -> ssl.SSLContext:
        """Server-side context presenting a leaf cert for ``names``."""
        files = self.issue(*names, expired=expired)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(files.cert_pem, files.key_pem)
        # Pin HTTP/1.1 so an h2-capable client does not try to speak HTTP/2 to us.
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """Client-side context trusting only this CA."""
        return ssl.create_default_context(cafile=str(self.ca_pem))


def private_ca(tmp_path: Path) -> PrivateCA:
    """A fresh private CA whose files live under ``tmp_path``."""
    return PrivateCA(tmp_path / "private-ca")
