"""Running the flow from a terminal: a Prefect API that outlives the flow, and signals that stop
the run cleanly (Ctrl-C, SIGTERM) and a second time at once."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from haiper_sync.errors import Interrupted

# Each a terminal or a service manager sends to stop a program.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The temporary Prefect servers running now: a second signal's exit at once takes them along
# (in their own session, no signal of the terminal's reaches them).
_SERVERS: list[subprocess.Popen[Any]] = []


def prefect_env() -> None:
    """Prefect's settings for a run from the CLI."""
    # No network here but the package registries: telemetry would only log errors (the
    # server's, and the client's first-run notice in a terminal). A user may turn it back on.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "WARNING")


@contextmanager
def prefect_api() -> Iterator[None]:
    """The Prefect API the run reports to: ``PREFECT_API_URL``'s, else a temporary server.

    Prefect's own temporary server is a child in the terminal's process group, so Ctrl-C
    killed it at once while the flow went on, its events then waiting on timeouts. Ours runs
    in its own session, out of the terminal's reach, and stops after the flow.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    server = _own_session_server()
    server.start()
    process = server.server_process
    _SERVERS.append(process)
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            try:
                yield
            finally:
                _drain_to_api()
    finally:
        server.stop()
        _SERVERS.remove(process)


def _drain_to_api(timeout: float = 5.0) -> None:
    """Send the run's last logs and events while their server still listens."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout)


def _own_session_server() -> Any:
    from prefect.server.api.server import SubprocessASGIServer

    class OwnSessionServer(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            # Prefect builds the command; only the session it starts in is ours to choose.
            popen = subprocess.Popen
            subprocess.Popen = functools.partial(popen, start_new_session=True)  # type: ignore[misc,assignment]
            try:
                return super()._run_uvicorn_command()
            finally:
                subprocess.Popen = popen  # type: ignore[misc]

    return OwnSessionServer()


class SignalStop:
    """While active, the first stop signal raises `Interrupted` in the main thread (the run
    records it and ends); a second one exits at once, with the same exit code."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            for server in _SERVERS:
                server.terminate()
            os._exit(128 + self.signum)
        self.signum = signum
        raise Interrupted(signum)

    def flow_ended(self, state: Any) -> None:
        """Take note of a SIGTERM that the flow run ending in ``state`` caught.

        During a flow run Prefect's own SIGTERM handler replaces ours; the flow turns its
        `TerminationSignal` into a Cancelled state, which is how that SIGTERM shows here.
        Noted before the logs are drained, so that a second signal meanwhile exits at once.
        """
        if self.signum is None and state.is_cancelled():
            self.signum = signal.SIGTERM

    def __enter__(self) -> SignalStop:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
