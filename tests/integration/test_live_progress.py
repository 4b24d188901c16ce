"""A run's progress as its log shows it through the Prefect API, from time and not from chunk
writes: a line at least every ``HAIPER_PROGRESS_SECONDS`` while chunks are in flight, counting
the IDs already answered inside them, and saying when requests wait for the rate limit."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorConfig, SimulatorServer, generate_ids
from tests.conftest import SIM_KEY
from tests.integration.cli_process import flow_run_logs

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server", "api_key_env")]

EVERY = 1.0
# The flow looks at the progress once a second (flows/reporting.py TICK), the log's clock and
# the thread pool add a little.
SLACK = 1.5
PROGRESS = re.compile(r"Progress: (?P<seen>\d+) of (?P<total>\d+) IDs")


def progress_lines(state: Any) -> list[tuple[float, int, str]]:
    """``(time, IDs counted, line)`` of each progress line of the run, in order."""
    logs = flow_run_logs(state.state_details.flow_run_id, until="Done:")
    lines = []
    for log in logs:
        match = PROGRESS.match(log.message)
        if match:
            lines.append((log.timestamp.timestamp(), int(match["seen"]), log.message))
    return lines


def test_progress_lines_come_every_interval_counting_ids_answered_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAIPER_PROGRESS_SECONDS", str(EVERY))
    manifest = tmp_path / "ids.txt"
    manifest.write_text("\n".join(generate_ids(60, seed=186)) + "\n")
    # 300 ms a request, 4 at once: a chunk of 20 takes seconds, two chunks share the slots.
    config = SimulatorConfig(api_keys=frozenset({SIM_KEY}), latency_ms=300)
    with SimulatorServer(config) as sim:
        state = sync_creations(
            manifest=str(manifest), db_path=str(tmp_path / "live.duckdb"), api_url=sim.url,
            rate_limit=100_000, chunk_size=20, concurrency=4, return_state=True,
        )  # fmt: skip
    assert state.is_completed()
    lines = progress_lines(state)
    assert len(lines) >= 4, lines
    # Before the first chunk of 20 is written, a line already counts IDs answered in flight,
    # and the requests they took.
    in_flight = [line for _, seen, line in lines if 0 < seen < 20]
    assert in_flight and " 0 requests" not in in_flight[0], lines
    assert [seen for _, seen, _ in lines] == sorted(seen for _, seen, _ in lines)
    assert lines[-1][1] == 60
    gaps = [later - earlier for (earlier, _, _), (later, _, _) in itertools.pairwise(lines)]
    assert max(gaps) <= EVERY + SLACK, gaps


def test_a_run_held_back_by_the_rate_limit_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAIPER_PROGRESS_SECONDS", str(EVERY))
    # 10 requests per 3 s window, the API's as the flow's: 20 IDs need about 36 requests.
    monkeypatch.setenv("HAIPER_RATE_WINDOW", "3")
    config = SimulatorConfig(
        api_keys=frozenset({SIM_KEY}), rate_limit_per_minute=10, rate_window_seconds=3
    )
    manifest = tmp_path / "ids.txt"
    manifest.write_text("\n".join(generate_ids(20, seed=187)) + "\n")
    with SimulatorServer(config) as sim:
        state = sync_creations(
            manifest=str(manifest), db_path=str(tmp_path / "limited.duckdb"), api_url=sim.url,
            rate_limit=10, chunk_size=10, return_state=True,
        )  # fmt: skip
        rate_limited = sim.stats.snapshot()["rate_limited"]
    assert state.is_completed()
    assert rate_limited == 0  # the flow paced itself: the wait was its own limiter's
    lines = progress_lines(state)
    waiting = [line for _, _, line in lines if line.endswith("; waiting for the rate limit")]
    assert waiting, lines
