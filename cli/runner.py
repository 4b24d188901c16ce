"""Running the flow from a terminal: a Prefect API that outlives the flow, and signals that stop
the run cleanly (Ctrl-C, SIGTERM) and a second time at once."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from haiper_sync.errors import HaiperSyncError, Interrupted

# Each a terminal or a service manager sends to stop a program.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The temporary Prefect servers running now: a second signal's exit at once takes them along
# (in their own session, no signal of the terminal's reaches them).
_SERVERS: list[TemporaryServer] = []


def prefect_env() -> None:
    """Prefect's settings for a run from the CLI."""
    # No network here but the package registries: telemetry would only log errors (the
    # server's, and the client's first-run notice in a terminal). A user may turn it back on.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "WARNING")


@contextmanager
def prefect_api(prepare: Callable[[], object] = lambda: None) -> Iterator[None]:
    """The Prefect API the run reports to: ``PREFECT_API_URL``'s, else a temporary server.

    ``prepare()`` (importing the flows) runs while a temporary server boots: the two take
    seconds each, on different cores. Prefect's own temporary server is a child in the
    terminal's process group, so Ctrl-C killed it at once while the flow went on, its events
    then waiting on timeouts. Ours runs in its own session, out of the terminal's reach, and
    stops after the flow.
    """
    # The server's boot is the longest step of a run's start, and knowing whether one is needed
    # takes Prefect's settings (a second's import here): unless the environment names an API, it
    # boots from the first moment, and stops at once if a profile names one.
    server = None if os.environ.get("PREFECT_API_URL") else TemporaryServer()
    try:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        if PREFECT_API_URL.value():
            if server is not None:
                server.terminate()  # not waited for here: reaped as the run ends
            prepare()
            yield
            return
        server = server or TemporaryServer()
        prepare()
        server.wait_ready()
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            try:
                yield
            finally:
                _drain_to_api()
    finally:
        if server is not None:
            server.stop()


def _drain_to_api(timeout: float = 5.0) -> None:
    """Send the run's last logs and events while their server still listens."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout)


class PrefectUnavailable(HaiperSyncError):
    """The temporary Prefect server did not start."""


class TemporaryServer:
    """Prefect's API server for one run, started as Prefect starts its own temporary one.

    Not Prefect's `SubprocessASGIServer`: importing it loads the whole server into this process
    (about 2 s here) only to build a command line, its process would share the terminal's
    session, and it waits for the server before the caller can do anything else.
    """

    # uvicorn's exit code when its startup failed: a port taken since we found it free (tried
    # again on another port, as Prefect does), or the server's own failure (a database it cannot
    # open): Prefect's retries on it forever, until its start timeout.
    STARTUP_FAILED = 3
    PORT_TRIES = 2

    def __init__(self) -> None:
        self.port = 0
        self.process = self._spawn()
        _SERVERS.append(self)

    @property
    def api_url(self) -> str:
        """The API's URL, as ``PREFECT_API_URL`` takes it."""
        return f"http://127.0.0.1:{self.port}/api"

    def _spawn(self) -> subprocess.Popen[bytes]:
        # Found, not imported: the server starts before this process has imported Prefect.
        # It reads Prefect's settings as this process does, from the same environment, profile
        # and working directory.
        prefect = importlib.util.find_spec("prefect")
        assert prefect is not None and prefect.submodule_search_locations
        packages = Path(prefect.submodule_search_locations[0]).parent
        with socket.socket() as probe:  # a port free now; a race is retried on exit code 3
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        # -P: the user's working directory is not on the server's path, so a project folder
        # named `cli`, `uvicorn` or `prefect` cannot stand in for the modules it starts from.
        command = [
            sys.executable, "-P", "-m", "cli.prefect_server",
            "--app-dir", str(packages),
            "--factory", "prefect.server.api.server:create_app",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--log-level", "error", "--lifespan", "on",
        ]  # fmt: skip
        env = os.environ | {
            # What Prefect sets for its temporary server: no UI, ephemeral services.
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        return subprocess.Popen(command, env=env, start_new_session=True)

    def wait_ready(self, poll: float = 0.05) -> None:
        """Wait until the server answers its health check, or fail in one line."""
        import httpx
        from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

        deadline = time.monotonic() + PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
        tries = 1
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                code = self.process.poll()
                if code == self.STARTUP_FAILED and tries < self.PORT_TRIES:
                    tries += 1
                    self.process = self._spawn()
                elif code is not None:
                    raise PrefectUnavailable(
                        f"the temporary Prefect server exited with code {code} while starting "
                        "(set PREFECT_API_URL to use a running server)"
                    )
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(poll)
        self.stop()
        raise PrefectUnavailable(
            "the temporary Prefect server did not start within "
            f"{PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()} s "
            "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS; or set PREFECT_API_URL)"
        )

    def terminate(self) -> None:
        """Ask the server to stop; do not wait."""
        if self.process.poll() is None:
            self.process.terminate()

    def stop(self, grace: float = 5.0) -> None:
        """Stop the server, killing it after ``grace`` seconds."""
        self.terminate()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self in _SERVERS:
            _SERVERS.remove(self)


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
