"""Run the simulator with uvicorn: in a background thread (tests) or blocking (CLI)."""

from __future__ import annotations

import gc
import importlib.util
import ipaddress
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import uvicorn

from haiper_sync.errors import ConfigError
from haiper_sync.simulator.app import create_app
from haiper_sync.simulator.state import SimulatorConfig, SimulatorStats

_HTTP_IMPL = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


def _listen_socket(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP (not 0) makes asyncio set TCP_NODELAY on accepted connections, avoiding
    # ~40 ms Nagle/delayed-ACK stalls on every keep-alive request.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def _uvicorn_config(config: SimulatorConfig, stats: SimulatorStats) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(config, stats),
        loop="asyncio",
        http=_HTTP_IMPL,
        ws="none",
        lifespan="off",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        # Bounded so stop() cannot hang on a request stuck in a long "slow" fault.
        timeout_graceful_shutdown=2,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


class _ReadyFileServer(uvicorn.Server):
    """A uvicorn server that writes its URL to a file once it accepts connections."""

    def __init__(self, config: uvicorn.Config, ready_file: Path, url: str) -> None:
        super().__init__(config)
        self._ready_file = ready_file
        self._url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            _write_atomically(self._ready_file, self._url)


def _write_atomically(path: Path, text: str) -> None:
    # Rename so a polling reader never sees a half-written URL.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def serve(
    config: SimulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    ready_file: str | Path | None = None,
    stats: SimulatorStats | None = None,
    allow_remote: bool = False,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Serve the simulator in the foreground until SIGINT/SIGTERM (port 0 = any free port).

    Only on a loopback address unless ``allow_remote``; ``on_listening`` hears the URL once the
    socket is bound (with the real port when ``port`` is 0).
    """
    if not allow_remote and not _is_loopback(host):
        raise ConfigError(
            f"--host {host} would let other machines reach the simulator; it serves on "
            "loopback only unless --allow-remote says otherwise"
        )
    cfg = config if config is not None else SimulatorConfig()
    try:
        sock = _listen_socket(host, port)
    except OSError as error:
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    if on_listening is not None:
        on_listening(_url(sock))
    ucfg = _uvicorn_config(cfg, stats if stats is not None else SimulatorStats())
    server = (
        _ReadyFileServer(ucfg, Path(ready_file), _url(sock))
        if ready_file is not None
        else uvicorn.Server(ucfg)
    )
    # This process only serves from here on: what it made while starting (modules, the app)
    # lives until it ends, and leaving it out of the collector's scans is ~10 % less CPU for
    # each request under a benchmark's load.
    gc.freeze()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


class SimulatorServer:
    """The simulator on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        stats: SimulatorStats | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.stats = stats if stats is not None else SimulatorStats()
        self.host = host
        self.port = port
        self.url = ""
        self._start_timeout = start_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def start(self) -> SimulatorServer:
        """Start serving and return once the server accepts connections."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        sock = _listen_socket(self.host, self.port)
        server = uvicorn.Server(_uvicorn_config(self.config, self.stats))
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="haiper-simulator", daemon=True
        )
        self._sock, self._server, self._thread = sock, server, thread
        self.url = _url(sock)
        thread.start()
        deadline = time.monotonic() + self._start_timeout
        while not server.started:
            if not thread.is_alive():
                self._cleanup()
                raise RuntimeError("simulator thread exited during startup")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"simulator not ready after {self._start_timeout}s")
            time.sleep(0.002)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down and wait for its thread (forcing exit if it lingers)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout / 2)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout / 2)
        self._cleanup()

    def set_epoch(self, epoch: int) -> None:
        """Let simulated time pass: later requests see statuses at this epoch."""
        self.config.epoch = epoch

    def _cleanup(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
