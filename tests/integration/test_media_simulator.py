"""The simulator's /media/ route: signed links with a TTL, deterministic bytes, Range."""

from __future__ import annotations

import httpx
import pytest

from haiper_sync.simulator import SimulatorConfig, SimulatorServer
from haiper_sync.simulator.data import media_bytes, media_size
from tests.integration.media_helpers import KEY, seed_database, served_path, succeeded_ids
from tests.support.fakes import FakeClock

pytestmark = pytest.mark.integration


def test_links_expire_bytes_are_stable_and_ranges_are_served(tmp_path: object) -> None:
    clock = FakeClock(5_000_000.0)
    config = SimulatorConfig(api_keys=frozenset({KEY}), media_ttl=60.0, wall_clock=clock)
    with SimulatorServer(config) as sim:
        creation = succeeded_ids(1, seed=5)[0]
        detail = seed_database(sim, tmp_path / "h.duckdb", [creation])[creation]  # type: ignore[operator]
        url = detail["outputs"][0]["media_url"]
        path = served_path(url)
        assert url.startswith(sim.url + "/media/") and "Expires=5000060" in url
        with httpx.Client() as client:
            whole = client.get(url)
            assert whole.status_code == 200 and whole.content == media_bytes(
                path, 0, media_size(path)
            )
            part = client.get(url, headers={"Range": "bytes=10-19"})
            assert part.status_code == 206 and part.content == whole.content[10:20]
            assert part.headers["content-range"] == f"bytes 10-19/{media_size(path)}"
            assert client.get(url, headers={"Range": "bytes=999999999-"}).status_code == 416
            assert client.get(url.replace("Signature=", "Signature=0")).status_code == 403
            clock.now += 61
            assert client.get(url).status_code == 403
            client.get(url, headers={"Authorization": "Bearer leak"})
        media = sim.stats.media_snapshot()
        assert media["requests"] == 6 and media["with_authorization"] == 1
        assert sim.stats.snapshot()["by_endpoint"]["detail"] == 1  # media is not an API request
