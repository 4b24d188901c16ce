"""A run's log: one progress line per chunk, no per-task noise."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorServer, generate_ids
from tests.support.manifest import Manifest


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_server", "api_key_env")
def test_the_runs_log_has_progress_lines_and_no_task_success_lines(
    sim: SimulatorServer, tmp_path: Path, manifest: Manifest
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    ids_file = manifest(generate_ids(60, seed=101))
    state = sync_creations(
        manifest=str(ids_file), db_path=str(tmp_path / "p.duckdb"), api_url=sim.url,
        rate_limit=100_000, chunk_size=20, return_state=True,
    )  # fmt: skip
    assert state.is_completed()
    flow_run_id = state.state_details.flow_run_id
    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    deadline = time.monotonic() + 20
    logs = []
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:  # the API handler ships logs in the background
            logs = client.read_logs(log_filter=log_filter)
            if any(log.message.startswith("Done:") for log in logs):
                break
            time.sleep(0.5)
    progress = [log.message for log in logs if log.message.startswith("Progress: ")]
    assert progress and progress[0].startswith("Progress: 20 of 60 IDs (33%)")
    # Three chunk tasks and two bookkeeping tasks ran; none logged its success.
    assert [log.message for log in logs if log.task_run_id is not None] == []
