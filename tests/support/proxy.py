"""ForwardProxy: an HTTP forward proxy (absolute-form requests and CONNECT tunnels)."""

from __future__ import annotations

import asyncio
import base64
import threading
from urllib.parse import urlsplit

from tests.support.loop import LoopThread, pipe
from tests.support.wire import (
    HEAD_LIMIT,
    get_header,
    has_token,
    parse_head,
    read_body,
    simple_response,
)

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}
)


class ForwardProxy(LoopThread):
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
            asyncio.open_connection(real_host, real_port, limit=HEAD_LIMIT),
            self._connect_timeout,
        )

    async def _serve_conn(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _version, headers = parse_head(head)
        with self._lock:
            self._seen.append(f"{method} {target}")
        if self._auth is not None and get_header(headers, "proxy-authorization") != self._auth:
            writer.write(
                simple_response(
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
            writer.write(simple_response(400, f"bad CONNECT target {target!r}\n"))
            await writer.drain()
            return
        try:
            up_reader, up_writer = await self._open(host, int(port_text))
        except (OSError, TimeoutError) as exc:
            writer.write(simple_response(502, f"cannot reach {target}: {exc!r}\n"))
            await writer.drain()
            return
        try:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            pipes = {
                asyncio.create_task(pipe(reader, up_writer)),
                asyncio.create_task(pipe(up_reader, writer)),
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
            writer.write(simple_response(400, f"not an absolute http URL: {target!r}\n"))
            await writer.drain()
            return
        body = await read_body(reader, writer, headers)
        try:
            up_reader, up_writer = await self._open(url.hostname, url.port or 80)
        except (OSError, TimeoutError) as exc:
            writer.write(simple_response(502, f"cannot reach {url.netloc}: {exc!r}\n"))
            await writer.drain()
            return
        try:
            framed = get_header(headers, "content-length") is not None or has_token(
                headers, "transfer-encoding", "chunked"
            )
            out = [
                (n, v)
                for n, v in headers
                if n.lower() not in _HOP_BY_HOP
                and not n.lower().startswith("proxy-")
                and n.lower() not in ("content-length", "transfer-encoding")
            ]
            if get_header(out, "host") is None:
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
                writer.write(simple_response(502, f"no response from {url.netloc}: {exc!r}\n"))
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
            await pipe(up_reader, writer)
        finally:
            up_writer.close()
