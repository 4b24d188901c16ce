"""Download decisions: retries, redirects, refused links, bandwidth; no clock, no sleep."""

from __future__ import annotations

import errno

import pytest

from haiper_sync.api.retry import Action, RetryPolicy
from haiper_sync.errors import ArchiveUnavailable, DiskFull, LinkExpired, MediaError
from haiper_sync.media.destination import store_failure
from haiper_sync.media.policy import Bandwidth, decide_download, next_hop, status_error
from tests.support.fakes import FakeClock

POLICY = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=10.0, jitter=0.0)


@pytest.mark.parametrize("status", [400, 403, 410])
def test_a_refused_link_is_a_typed_outcome_not_a_retry(status: int) -> None:
    error = status_error(status, "media of c/o")
    assert isinstance(error, LinkExpired) and error.http_status == status
    assert decide_download(error, 1, POLICY, 0.0).action is Action.GIVE_UP


def test_5xx_and_cut_bodies_are_retried_with_backoff_then_deferred() -> None:
    error = status_error(503, "x")
    assert error.transient
    assert decide_download(error, 1, POLICY, 0.0).delay == 1.0
    assert decide_download(error, 2, POLICY, 0.0).delay == 2.0
    assert decide_download(error, 3, POLICY, 0.0).action is Action.DEFER
    cut = MediaError("x: body of 10 bytes, 20 announced", transient=True)
    assert decide_download(cut, 1, POLICY, 0.5).action is Action.RETRY
    assert decide_download(status_error(404, "x"), 1, POLICY, 0.0).action is Action.GIVE_UP


def test_redirects_go_only_to_https_or_the_same_origin_at_most_three_times() -> None:
    here = "http://127.0.0.1:9/media/a.mp4?Expires=1&Signature=s"
    assert next_hop(here, "/media/b.mp4", 0, "x") == "http://127.0.0.1:9/media/b.mp4"
    assert next_hop(here, "https://cdn2.example/a", 2, "x") == "https://cdn2.example/a"
    for bad in ("http://other.example/a", "ftp://127.0.0.1:9/a", "file:///etc/passwd", None):
        with pytest.raises(MediaError):
            next_hop(here, bad, 0, "x")
    with pytest.raises(MediaError, match="more than 3"):
        next_hop(here, "/again", 3, "x")


def test_the_bandwidth_cap_spreads_bytes_over_time() -> None:
    clock = FakeClock(100.0)
    cap = Bandwidth(1000, clock, burst_seconds=0.0)
    assert cap.reserve(500) == 0.5
    assert cap.reserve(500) == 1.0  # queued behind the first
    clock.now = 102.0
    assert cap.reserve(1000) == 1.0  # the debt is paid; idle time saves no burst here
    assert Bandwidth(0, clock).reserve(10**9) == 0.0


def test_store_failures_stop_the_run_only_when_the_destination_refuses_everything() -> None:
    full = store_failure(OSError(errno.ENOSPC, "No space left on device"), "x")
    assert isinstance(full, DiskFull) and "\n" not in str(full)
    bucket = store_failure(FileNotFoundError("PUT ... <Code>NoSuchBucket</Code>\nmore"), "x")
    assert isinstance(bucket, ArchiveUnavailable) and "\n" not in str(bucket)
    assert isinstance(store_failure(PermissionError("denied"), "x"), ArchiveUnavailable)
    other = store_failure(RuntimeError("connection reset"), "media of c/o")
    assert isinstance(other, MediaError) and other.transient
