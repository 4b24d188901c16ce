"""Shared by the media archive's integration tests: a synced file, what the simulator serves."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from haiper_sync.api.models import CreationDetail
from haiper_sync.simulator import SimulatorServer, creation_status, generate_ids
from haiper_sync.simulator.data import MEDIA_PREFIX, media_sha256, media_size
from haiper_sync.store.connection import open_database
from haiper_sync.store.writes import replace_outputs, upsert_creations
from haiper_sync.sync.normalize import normalize_detail

KEY = "sim-media-key"


def succeeded_ids(n: int, seed: int = 11) -> list[str]:
    """``n`` IDs the simulator reports as `succeed`."""
    return [
        i for i in generate_ids(4 * n + 20, seed=seed) if creation_status(i)["status"] == "succeed"
    ][:n]


def seed_database(sim: SimulatorServer, db: Path, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Store the details the simulator serves now, as a sync would; return them by ID."""
    details: dict[str, dict[str, Any]] = {}
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}) as client:
        for creation_id in ids:
            response = client.get(f"{sim.url}/v1/creation/{creation_id}")
            response.raise_for_status()
            details[creation_id] = response.json()["value"]
    with open_database(db) as con:
        now = datetime.now(UTC)
        for creation_id, value in details.items():
            row, outputs = normalize_detail(
                creation_id, CreationDetail.model_validate(value), "{}", now, "seed"
            )
            upsert_creations(con, [row])
            replace_outputs(con, [creation_id], outputs)
    return details


def served_path(url: str) -> str:
    """The path under /media/ of a simulator link."""
    path = httpx.URL(url).path
    assert path.startswith(MEDIA_PREFIX), url
    return path[len(MEDIA_PREFIX) :]


def expected_files(
    details: dict[str, dict[str, Any]],
    sizes: dict[str, int] | None = None,
    scale: float = 1.0,
) -> dict[str, tuple[int, str]]:
    """Archive key -> (bytes, sha256) of every file the details link to (the simulator's
    ``media_sizes`` and ``media_scale`` as given)."""
    sizes = sizes or {}
    out: dict[str, tuple[int, str]] = {}

    def add(key: str, url: str) -> None:
        path = served_path(url)
        size = sizes.get(path) or media_size(path, scale)
        out[key] = (size, media_sha256(path, size))

    for creation_id, value in details.items():
        for o in value["outputs"]:
            ext = o["media_url"].split("?")[0].rsplit(".", 1)[-1]
            add(f"creations/{creation_id}/{o['id']}.{ext}", o["media_url"])
            if "thumbnail_url" in o:
                add(f"creations/{creation_id}/{o['id']}.thumbnail.jpg", o["thumbnail_url"])
        add(f"creations/{creation_id}/cover.jpg", value["thumbnail_url"])
    return out


def local_files(root: Path) -> dict[str, tuple[int, str]]:
    """Key -> (bytes, sha256) of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): (
            p.stat().st_size,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in root.rglob("*")
        if p.is_file()
    }


def table_text(db: Path, table: str) -> str:
    """Every value of a table as one string (to look for what must never be stored)."""
    with open_database(db, read_only=True) as con:
        return " ".join(str(row) for row in con.execute(f"SELECT * FROM {table}").fetchall())
