"""CannedServer: an HTTP/1.1 server answering each request with a handler's Reply."""

from __future__ import annotations

import asyncio
import ssl
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tests.support.loop import LoopThread
from tests.support.wire import (
    Reply,
    SeenRequest,
    chunks,
    encode_head,
    has_token,
    parse_head,
    read_body,
)


class CannedServer(LoopThread):
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
            method, target, version, headers = parse_head(head)
            body = await read_body(reader, writer, headers)
            request = SeenRequest(method, target, headers, body, version, conn)
            with self._lock:
                self._requests.append(request)
            try:
                reply = await loop.run_in_executor(self._pool, self._handler, request)
            except Exception:
                reply = Reply(500, body=traceback.format_exc().encode(), close=True)
            await self._send(writer, method, reply)
            client_close = has_token(headers, "connection", "close") or (
                version == "HTTP/1.0" and not has_token(headers, "connection", "keep-alive")
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
        writer.write(encode_head(reply.status, headers))
        if send_body and reply.chunked:
            # Separate writes so the chunks really arrive as separate pieces.
            for piece in chunks(reply.body):
                writer.write(piece)
                await writer.drain()
        elif send_body:
            writer.write(reply.body)
        await writer.drain()


def echo_path(request: SeenRequest) -> Reply:
    """A handler echoing the path back as plain text."""
    return Reply(body=f"hello {request.path}".encode(), headers=[("Content-Type", "text/plain")])
