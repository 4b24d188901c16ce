"""The layering, stated once and checked on every import of every module.

    cli → flows → tasks → core (haiper_sync), never back; the core never imports Prefect.

Inside the core, the folders follow a sync's own flow:

    shared vocabulary: settings, errors, statuses, rows, summary (import nothing of ours)
    api/      talks HTTP                      → shared
    store/    keeps the DuckDB file           → shared          (never api/, never sync/)
    sync/     plans, fetches, normalizes      → api/, store/, shared
    analyst/  reads the file for people       → store/, shared
    media/    archives creations' files       → api/, store/, sync/, shared
    simulator/ imitates the API               → statuses, errors
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

FORBIDDEN = {
    "haiper_sync": {"prefect", "prefect_dask", "tasks", "flows", "cli", "deployments"},
    "tasks": {"flows", "cli", "deployments"},
    "flows": {"cli", "deployments"},
}
SHARED = {"settings", "errors", "statuses", "rows", "summary"}
# Which parts of the core each part may import (a part: a folder, or a shared module).
MAY_IMPORT: dict[str, set[str]] = {
    **{name: SHARED for name in SHARED},
    "api": {"api"} | SHARED,
    "store": {"store"} | SHARED,
    "sync": {"sync", "api", "store"} | SHARED,
    "analyst": {"analyst", "store"} | SHARED,
    "media": {"media", "api", "store", "sync"} | SHARED,
    "simulator": {"simulator", "statuses", "errors"},
}


def imported_modules(source: str) -> set[str]:
    """Every absolute module name a source imports (``from a.b import c`` also counts a.b.c)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def core_part(module: str) -> str | None:
    """``haiper_sync.store.writes`` → ``store``; None outside the core or for the package."""
    parts = module.split(".")
    if parts[0] != "haiper_sync" or len(parts) < 2:
        return None
    return parts[1]


def wrong_arrows(module: str, source: str) -> list[str]:
    """The imports of ``module`` that point where its layer may not look."""
    here = core_part(module)
    root = module.split(".")[0]
    wrong = []
    for name in sorted(imported_modules(source)):
        if name.split(".")[0] in FORBIDDEN.get(root, set()) or (
            here and (target := core_part(name)) and target not in MAY_IMPORT[here]
        ):
            wrong.append(name)
    return wrong


def our_modules() -> list[tuple[str, Path]]:
    found = []
    for package in ("haiper_sync", "tasks", "flows", "cli", "deployments"):
        for path in (ROOT / package).rglob("*.py"):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found.append((dotted.removesuffix(".__init__"), path))
    return sorted(found)


def test_every_core_module_belongs_to_a_known_part() -> None:
    parts = {core_part(m) for m, _ in our_modules() if m.startswith("haiper_sync.")}
    assert parts <= set(MAY_IMPORT), parts - set(MAY_IMPORT)


@pytest.mark.parametrize(("module", "path"), our_modules(), ids=lambda v: str(v))
def test_no_import_points_the_wrong_way(module: str, path: Path) -> None:
    assert wrong_arrows(module, path.read_text()) == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("haiper_sync.store.writes", "from haiper_sync.api.client import HaiperClient"),
        ("haiper_sync.store.runs", "from haiper_sync.sync import plan"),
        ("haiper_sync.api.client", "import haiper_sync.store.connection"),
        ("haiper_sync.rows", "from haiper_sync.api.models import CreationDetail"),
        ("haiper_sync.analyst.queries", "from haiper_sync.sync.plan import Plan"),
        ("haiper_sync.simulator.app", "from haiper_sync.api import models"),
        ("haiper_sync.sync.fetch", "from prefect import task"),
        ("tasks.fetching", "from flows.sync import sync_creations"),
    ],
)
def test_the_checker_catches_a_wrong_arrow(module: str, source: str) -> None:
    assert wrong_arrows(module, source) != []


def _loaded_after_importing(modules: list[str]) -> set[str]:
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_the_core_runs_without_prefect_loaded() -> None:
    core = [m for m, _ in our_modules() if m.startswith("haiper_sync") and "__main__" not in m]
    loaded = _loaded_after_importing(core)
    assert {m for m in loaded if m.split(".")[0] == "prefect"} == set()


def test_only_serving_the_simulator_needs_the_sim_extra() -> None:
    # The CLI, the flow and the simulator's data load without its server (uvicorn, and the
    # Starlette app; Prefect itself imports parts of Starlette).
    light = ["cli.main", "flows.sync", "haiper_sync.simulator", "haiper_sync.simulator.__main__"]
    loaded = _loaded_after_importing(light)
    server = {"haiper_sync.simulator.app", "haiper_sync.simulator.server", "uvicorn", "httptools"}
    assert loaded & server == set()


def test_the_store_never_loads_the_http_stack() -> None:
    store = [m for m, _ in our_modules() if m.startswith("haiper_sync.store")]
    loaded = _loaded_after_importing(store)
    http = {m for m in loaded if m.split(".")[0] in ("httpx", "aiohttp", "httpx_aiohttp")}
    assert http == set()
    assert {m for m in loaded if m.startswith(("haiper_sync.api", "haiper_sync.sync"))} == set()
