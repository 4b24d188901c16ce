"""NginxLikeTlsPort: a TLS port that, like nginx, answers a plain HTTP request 400."""

from __future__ import annotations

import asyncio
import threading

from tests.support.canned import CannedServer
from tests.support.loop import LoopThread, pipe
from tests.support.wire import (
    HEAD_LIMIT,
    encode_head,
)

# What nginx answers a plain HTTP request on its TLS port (ngx_http_request.c, 400 page).
PLAIN_HTTP_ON_TLS_PORT = (
    b"<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n"
    b"<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n"
    b"<center>The plain HTTP request was sent to HTTPS port</center>\r\n"
    b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


class NginxLikeTlsPort(LoopThread):
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
                self._backend.host, self._backend.port, limit=HEAD_LIMIT
            )
            try:
                up_writer.write(first)
                pipes = {
                    asyncio.create_task(pipe(reader, up_writer)),
                    asyncio.create_task(pipe(up_reader, writer)),
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
        writer.write(encode_head(400, headers) + PLAIN_HTTP_ON_TLS_PORT)
        await writer.drain()
