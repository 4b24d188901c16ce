"""The real flow, on a Prefect test server, against the simulator over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows import sync_creations
from haiper_sync.simulator import SimulatorServer, generate_ids
from haiper_sync.summary import RunSummary
from tests.support.expected import Expected, table_counts
from tests.support.manifest import Manifest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server", "api_key_env")]

PLANTED = ["nf-missing-1", "nf-missing-2", "forbidden-1"]
REJECTED = ["../etc/passwd", "a b", "%2e%2e%2f"]


def manifest_lines(ids: list[str], extra: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    """A header, a comment, a blank line and repeats around the IDs."""
    return ["creation_id", "# a comment", *ids, "", *ids[:5], *extra]


def sync(sim: SimulatorServer, manifest: Path, db: Path, **kw: Any) -> RunSummary:
    return sync_creations(  # type: ignore[no-any-return]
        manifest=str(manifest),
        db_path=str(db),
        api_url=sim.url,
        chunk_size=60,
        rate_limit=100_000,
        **kw,
    )


def test_500_ids_land_exactly_and_a_rerun_only_asks_for_the_unfinished(
    sim: SimulatorServer, tmp_path: Path, db_path: Path, manifest: Manifest
) -> None:
    ids = generate_ids(500, seed=11)
    expected = Expected(ids)
    ids_file = manifest(manifest_lines(ids, PLANTED + REJECTED))

    summary = sync(sim, ids_file, db_path)

    planted = len(PLANTED)
    assert sim.stats.snapshot()["total"] == 500 + planted + len(expected.succeeded)
    assert summary.state == "completed"
    assert summary.requests == 500 + planted + len(expected.succeeded)
    assert summary.ids_in_manifest == 500 + planted
    assert summary.ids_rejected == len(REJECTED)
    assert summary.ids_checked == 500
    assert summary.ids_fetched == summary.rows_inserted == len(expected.succeeded)
    assert summary.ids_failed == expected.count("failed")
    assert summary.ids_pending == len(expected.unfinished)
    assert summary.ids_errored == planted

    con = duckdb.connect(str(db_path), read_only=True)
    counts = table_counts(con)
    assert counts == {
        "creations": len(expected.succeeded),
        "creation_outputs": expected.output_count(),
        "creation_status": 500 + planted,
        "sync_runs": 1,
        "sync_errors": planted + len(REJECTED),
    }
    got = dict(con.execute("SELECT creation_id, status FROM creation_status").fetchall())
    assert {i: got[i] for i in ids} == expected.statuses
    assert all(got[i] is None for i in PLANTED)
    _assert_creations_match(con, expected)
    errors = con.execute(
        "SELECT creation_id, stage, http_status, error_code FROM sync_errors ORDER BY ALL"
    ).fetchall()
    assert ("nf-missing-1", "status", 404, "H-10002003") in errors
    assert ("forbidden-1", "status", 403, "H-10002002") in errors
    assert sorted(e[0] for e in errors if e[1] == "manifest") == sorted(REJECTED)
    con.close()

    # Second run: no new rows, requests only for IDs that are not finished.
    sim.stats.reset()
    again = sync(sim, ids_file, db_path)
    assert again.ids_skipped == len(expected.succeeded) + expected.count("failed")
    assert sim.stats.snapshot()["total"] == len(expected.unfinished) + planted
    asked = set(sim.stats.snapshot()["per_id"]["status"])
    assert asked == set(expected.unfinished) | set(PLANTED)
    con = duckdb.connect(str(db_path), read_only=True)
    after = table_counts(con)
    assert after | {"sync_runs": 1, "sync_errors": 0} == counts | {
        "sync_runs": 1,
        "sync_errors": 0,
    }
    assert after["sync_runs"] == 2
    checks = dict(con.execute("SELECT creation_id, checks FROM creation_status").fetchall())
    assert all(checks[i] == 2 for i in expected.unfinished)
    assert all(checks[i] == 1 for i in expected.succeeded)
    con.close()

    # Time passes (a day, moved back in the file, past the unchanged IDs' 20 h back-off): some
    # unfinished IDs succeed; only they are fetched.
    con = duckdb.connect(str(db_path))
    con.execute("UPDATE creation_status SET next_check_at = next_check_at - INTERVAL 1 DAY")
    con.close()
    sim.set_epoch(1)
    later = Expected(ids, epoch=1)
    newly = set(later.succeeded) - set(expected.succeeded)
    assert newly, "the simulator should finish some creations at epoch 1"
    sim.stats.reset()
    third = sync(sim, ids_file, db_path)
    assert third.ids_fetched == len(newly)
    assert sim.stats.snapshot()["by_endpoint"]["detail"] == len(newly)
    con = duckdb.connect(str(db_path), read_only=True)
    assert table_counts(con)["creations"] == len(later.succeeded)
    _assert_creations_match(con, later)
    con.close()


def _assert_creations_match(con: duckdb.DuckDBPyConnection, expected: Expected) -> None:
    cursor = con.execute("SELECT * FROM creations")
    names = [d[0] for d in cursor.description]
    rows = {r[0]: dict(zip(names, r, strict=True)) for r in cursor.fetchall()}
    details = expected.details()
    assert set(rows) == set(details)
    for creation_id, value in details.items():
        row = rows[creation_id]
        for name in (
            "user_id", "username", "avatar", "type", "input_type", "output_type", "prompt",
            "negative_prompt", "create_time_raw", "update_time_raw", "status", "video_url",
            "thumbnail_url",
        ):  # fmt: skip
            source = name.removesuffix("_raw")
            assert row[name] == value.get(source), (creation_id, name)
        assert row["create_time"].isoformat().startswith(value["create_time"][:19])
        for name in ("fps", "width", "height"):
            assert row[name] == value["settings"][name]
        for name in ("like_count", "is_like", "collects_count", "is_collect"):
            assert row[name] == value["commits"][name]
        assert json.loads(row["raw_json"])["value"] == value
        assert row["output_count"] == len(value["outputs"])
        assert row["notes"] is None
    outputs = con.execute(
        "SELECT creation_id, output_id, position, media_url, thumbnail_url FROM creation_outputs"
    ).fetchall()
    want = {
        (cid, o["id"], pos, o["media_url"], o.get("thumbnail_url"))
        for cid, value in details.items()
        for pos, o in enumerate(value["outputs"])
    }
    assert set(outputs) == want


def test_refresh_fetches_everything_again_without_duplicating(
    sim: SimulatorServer, tmp_path: Path, db_path: Path, manifest: Manifest
) -> None:
    ids = generate_ids(80, seed=3)
    expected = Expected(ids)
    ids_file = manifest(manifest_lines(ids))
    sync(sim, ids_file, db_path)
    con = duckdb.connect(str(db_path), read_only=True)
    before = table_counts(con)
    con.close()
    sim.stats.reset()
    summary = sync(sim, ids_file, db_path, refresh=True)
    assert sim.stats.snapshot()["total"] == 80 + len(expected.succeeded)
    assert summary.rows_updated == len(expected.succeeded) and summary.rows_inserted == 0
    con = duckdb.connect(str(db_path), read_only=True)
    assert table_counts(con) == before | {"sync_runs": 2}
    con.close()


def test_wrong_key_fails_fast_and_keeps_what_was_synced(
    sim: SimulatorServer,
    tmp_path: Path,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    manifest: Manifest,
) -> None:
    ids = generate_ids(40, seed=5)
    ids_file = manifest(manifest_lines(ids))
    sync(sim, ids_file, db_path)
    con = duckdb.connect(str(db_path), read_only=True)
    before = table_counts(con)
    con.close()

    monkeypatch.setenv("HAIPER_API_KEY", "wrong-key")
    sim.set_epoch(1)  # so there is something left to ask about
    sim.stats.reset()
    state = sync_creations(
        manifest=str(ids_file), db_path=str(db_path), api_url=sim.url, return_state=True
    )
    assert state.is_failed()
    # Fast: a 401 is never retried; at most one request per in-flight ID.
    assert sim.stats.snapshot()["by_status"] == {"401": sim.stats.snapshot()["total"]}
    con = duckdb.connect(str(db_path), read_only=True)
    assert table_counts(con) == before | {"sync_runs": 2}
    state_row, message = con.execute(  # type: ignore[misc]
        "SELECT state, message FROM sync_runs ORDER BY started_at DESC LIMIT 1"
    ).fetchone()
    con.close()
    assert state_row == "failed" and "401" in message and "wrong-key" not in message


def test_transient_faults_are_retried_and_drift_is_absorbed(
    sim: SimulatorServer, tmp_path: Path, db_path: Path, manifest: Manifest
) -> None:
    ids = generate_ids(60, seed=8)
    expected = Expected(ids)
    ok = expected.succeeded
    sim.config.id_faults = {
        f"status:{ids[0]}": "500*2",
        f"status:{ids[1]}": "429*1",
        f"status:{ids[2]}": "reset*1",
        f"detail:{ok[0]}": "truncated*1",
        f"detail:{ok[1]}": "not_json*1",
        f"detail:{ok[2]}": "drift_output_object",
        f"detail:{ok[3]}": "drift_string_numbers",
        f"detail:{ok[4]}": "drift_wrong_types",
        f"detail:{ok[5]}": "drift_mismatched_id",
        f"detail:{ok[6]}": "drift_extra_fields",
        f"detail:{ok[7]}": "drift_missing_fields",
    }
    ids_file = manifest(manifest_lines(ids))
    summary = sync(sim, ids_file, db_path)

    assert summary.ids_errored == 0
    # The reset is re-sent once by aiohttp itself (an idempotent GET on a dropped keep-alive
    # connection, RFC 9112 9.3.1): the server counts it, our retry policy never sees it.
    assert summary.retries == 5
    assert summary.requests == 60 + len(ok) + 5
    assert sim.stats.snapshot()["total"] == 60 + len(ok) + 6
    con = duckdb.connect(str(db_path), read_only=True)
    counts = table_counts(con)
    assert counts["creations"] == len(ok) and counts["creation_status"] == 60
    notes = dict(con.execute("SELECT creation_id, notes FROM creations").fetchall())
    assert notes[ok[0]] is None and notes[ok[1]] is None
    assert "mismatch" in notes[ok[5]]
    assert notes[ok[4]] is not None
    single = con.execute(
        "SELECT count(*) FROM creation_outputs WHERE creation_id = ?", [ok[2]]
    ).fetchone()
    assert single == (1,)
    fps = con.execute("SELECT fps, width FROM creations WHERE creation_id = ?", [ok[3]]).fetchone()
    assert fps is not None and fps[0] is not None and fps[1] is not None
    con.close()
