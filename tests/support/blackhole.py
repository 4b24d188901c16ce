"""Black holes: a port where TCP connects hang, and a server beside one."""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Callable, Iterator

from tests.support.canned import CannedServer
from tests.support.wire import (
    Reply,
    SeenRequest,
)


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
