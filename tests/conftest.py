"""Shared fixtures. Prefect gets a throwaway home before anything imports it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

_PREFECT_HOME = tempfile.mkdtemp(prefix="haiper-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("HAIPER_API_KEY", None)

import pytest  # noqa: E402

from haiper_sync.simulator import SimulatorConfig, SimulatorServer  # noqa: E402
from tests.support.manifest import Manifest, write_manifest  # noqa: E402

SIM_KEY = "sim-test-key"


@pytest.fixture(autouse=True)
def _in_a_temporary_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own empty directory, never in the checkout.

    What the working directory holds must not change a result: after `make demo` the checkout
    holds haiper-demo.duckdb, which the CLI rightly points at when a database is missing.
    """
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One Prefect test server for the whole session (its first start runs migrations)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    """A fresh simulator on a free 127.0.0.1 port, accepting ``SIM_KEY``."""
    with SimulatorServer(SimulatorConfig(api_keys=frozenset({SIM_KEY}))) as server:
        yield server


@pytest.fixture
def api_key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """Export the simulator's key as ``HAIPER_API_KEY``."""
    monkeypatch.setenv("HAIPER_API_KEY", SIM_KEY)
    return SIM_KEY


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a fresh DuckDB file."""
    return tmp_path / "haiper.duckdb"


@pytest.fixture
def manifest(tmp_path: Path) -> Manifest:
    """Write a manifest: IDs one a line (each ending in a newline), or text as given.

    ``name`` may hold folders below ``tmp_path`` (made as needed).
    """

    def write(ids_or_text: Iterable[str] | str, name: str = "ids.txt") -> Path:
        return write_manifest(tmp_path, ids_or_text, name)

    return write
