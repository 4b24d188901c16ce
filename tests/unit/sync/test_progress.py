"""Progress a human can follow without a terminal: one line per chunk, no per-task noise."""

from __future__ import annotations

from haiper_sync.sync.progress import progress_line


def test_the_line_says_done_of_total_requests_rate_errors_and_time_left() -> None:
    line = progress_line(done=250, total=1_000, requests=450, errors=3, elapsed=60.0)
    assert line == (
        "Progress: 250 of 1,000 IDs (25%), 450 requests (450/min), 3 errors; "
        "about 3 min left at this rate"
    )
    assert progress_line(1_000, 1_000, 1_800, 0, 240.0).endswith("0 errors")
    assert "left" not in progress_line(0, 10, 0, 0, 0.0)
