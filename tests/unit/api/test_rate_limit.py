"""The client-side rate limiter: on a fake clock, then against a simulator that enforces the
same quota with 429s.

Against the simulator the quota window is shrunk from 60 s to 2 s on both sides so several
windows pass quickly.
"""

from __future__ import annotations

import bisect
import heapq
import random
import time
from pathlib import Path

import duckdb
import pytest

from flows import sync_creations
from haiper_sync.api.ratelimit import RateLimiter
from haiper_sync.simulator import SimulatorConfig, SimulatorServer, generate_ids
from tests.conftest import SIM_KEY
from tests.support.expected import Expected, table_counts
from tests.support.fakes import FakeClock

QUOTA, WINDOW = 40, 2.0


def test_never_more_than_rate_in_any_window_as_the_server_counts_over_1000_requests() -> None:
    """Eight workers like the client's pool; the server stamps each request up to 2 s late."""
    clock = FakeClock()
    limiter = RateLimiter(50, window=60.0, margin=0.0, clock=clock)
    rng = random.Random(7)
    stamped: list[float] = []  # when the server counted each request
    events: list[tuple[float, int, object]] = [(rng.uniform(0, 1), 0, None) for _ in range(8)]
    heapq.heapify(events)
    sent = 0
    while events:
        clock.now, kind, slot = heapq.heappop(events)
        if kind == 1:  # an answer arrives: record it, and the worker takes the next request
            limiter.complete(slot)  # type: ignore[arg-type]
        if sent == 1000:
            continue
        if kind == 0 or kind == 1:
            sent += 1
            slot, wait = limiter.reserve()
            server = clock.now + wait + rng.uniform(0.0, 2.0)  # a busy loop on either side
            stamped.append(server)
            heapq.heappush(events, (server + rng.uniform(0.0, 0.5), 1, slot))
    stamped.sort()
    assert len(stamped) == 1000
    for i, t in enumerate(stamped):
        assert bisect.bisect_left(stamped, t + 60.0) - i <= 50
    # And it is not needlessly slow: 1000 requests at 50/min take about 20 windows.
    assert stamped[-1] <= 21 * 60.0


def test_first_burst_is_free_then_waits_for_the_oldest_answer() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, window=10.0, margin=0.0, clock=clock)
    slots = [limiter.reserve() for _ in range(3)]
    assert [wait for _, wait in slots] == [0.0, 0.0, 0.0]
    clock.now = 0.5
    limiter.complete(slots[0][0])  # answered at 0.5: counts until 10.5
    clock.now = 4.0
    _, wait = limiter.reserve()
    assert wait == 6.0  # slot 2 (sent at 0, not yet answered) expires first, at 10
    _, wait = limiter.reserve()
    assert wait == 6.0  # then slot 3, also at 10
    _, wait = limiter.reserve()
    assert wait == 6.5  # then the answered one, at 10.5


def test_margin_widens_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, window=60.0, margin=0.5, clock=clock)
    limiter.reserve()
    assert limiter.reserve()[1] == 60.5


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)


@pytest.fixture
def limited_sim(monkeypatch: pytest.MonkeyPatch) -> SimulatorServer:
    monkeypatch.setenv("HAIPER_RATE_WINDOW", str(WINDOW))
    config = SimulatorConfig(
        api_keys=frozenset({SIM_KEY}), rate_limit_per_minute=QUOTA, rate_window_seconds=WINDOW
    )
    with SimulatorServer(config) as server:
        yield server  # type: ignore[misc]


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_server", "api_key_env")
def test_at_the_servers_own_limit_a_run_gets_no_429(
    limited_sim: SimulatorServer, tmp_path: Path
) -> None:
    ids = generate_ids(60, seed=31)
    expected = Expected(ids)
    manifest = tmp_path / "ids.txt"
    manifest.write_text("\n".join(ids) + "\n")
    started = time.monotonic()
    summary = sync_creations(
        manifest=str(manifest),
        db_path=str(tmp_path / "db.duckdb"),
        api_url=limited_sim.url,
        rate_limit=QUOTA,
        concurrency=16,
    )
    elapsed = time.monotonic() - started
    stats = limited_sim.stats.snapshot()
    requests = 60 + len(expected.succeeded)
    assert stats["rate_limited"] == 0 and set(stats["by_status"]) == {"200"}
    assert summary.requests == stats["total"] == requests
    # The limiter really paced the run: the quota allows QUOTA requests per window.
    full_windows = (requests - 1) // QUOTA
    assert elapsed >= full_windows * WINDOW
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    assert table_counts(con)["creations"] == len(expected.succeeded)
    con.close()


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_server", "api_key_env")
def test_over_the_limit_429s_are_waited_out_and_nothing_is_lost(
    limited_sim: SimulatorServer, tmp_path: Path
) -> None:
    ids = generate_ids(30, seed=32)
    expected = Expected(ids)
    manifest = tmp_path / "ids.txt"
    manifest.write_text("\n".join(ids) + "\n")
    summary = sync_creations(
        manifest=str(manifest),
        db_path=str(tmp_path / "db.duckdb"),
        api_url=limited_sim.url,
        rate_limit=100_000,  # the client believes it may go much faster than the server allows
        concurrency=16,
    )
    stats = limited_sim.stats.snapshot()
    assert stats["rate_limited"] > 0
    assert summary.retries >= stats["rate_limited"] - summary.ids_errored
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    statuses = dict(con.execute("SELECT creation_id, status FROM creation_status").fetchall())
    fetched = {r[0] for r in con.execute("SELECT creation_id FROM creations").fetchall()}
    deferred = {
        r[0] for r in con.execute("SELECT creation_id FROM sync_errors WHERE deferred").fetchall()
    }
    con.close()
    # Every ID is synced, or deferred to the next run with a reason: none silently lost.
    for creation_id in ids:
        assert statuses[creation_id] == expected.statuses[creation_id] or creation_id in deferred
    assert set(expected.succeeded) <= fetched | deferred
    assert len(fetched) == summary.ids_fetched
