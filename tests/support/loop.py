"""An asyncio loop in a daemon thread, serving one listening socket: the base of every stub."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import ssl
import threading
from typing import Any

from tests.support.wire import HEAD_LIMIT

# Every wait in the stubs is bounded so a broken test fails instead of hanging the run.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


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


class LoopThread:
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
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError(f"{self._name} did not start within {START_TIMEOUT} s")
        if self._error is not None:
            self._thread.join(STOP_TIMEOUT)
            raise self._error

    def stop(self) -> None:
        """Stop serving, drop every connection and close all sockets."""
        if self._loop is None or self._thread is None:
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT)
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
                    limit=HEAD_LIMIT,
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
        await asyncio.wait_for(server.wait_closed(), STOP_TIMEOUT)
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


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes from ``reader`` to ``writer`` until EOF or a connection error."""
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
