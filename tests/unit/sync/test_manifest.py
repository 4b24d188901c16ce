"""Manifest planning inside DuckDB: hygiene, dedupe, subtraction of finished IDs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from haiper_sync.errors import ManifestError
from haiper_sync.rows import StatusRow
from haiper_sync.store import connection, runs, writes
from haiper_sync.sync.manifest import manifest_files
from haiper_sync.sync.plan import auto_chunk_size, chunk_size_for, iter_chunks, plan_run
from tests.support.manifest import Manifest

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def plan(db: Path, manifest: str, tmp: Path, refresh: bool = False, run_id: str = "r1"):  # type: ignore[no-untyped-def]
    with connection.open_database(db) as con:
        runs.start_run(con, run_id, manifest=manifest, refresh=refresh)
        return plan_run(
            con, manifest, run_id=run_id, refresh=refresh, todo_path=tmp / "todo.parquet",
            chunk_size=2,
        )  # fmt: skip


def test_hostile_lines_are_rejected_recorded_and_never_planned(
    tmp_path: Path, db_path: Path, manifest: Manifest
) -> None:
    hostile = ["../etc", "a/b", "a?b", "a#b", "%2e%2e%2f", "a b", "caf\u00e9", "x" * 300, "a\x07b"]
    ids_file = manifest(
        "creation_id\r\n"
        + "\r\n".join(["good-1", "good_2", *hostile, "good-1", "  good-3  "])
        + "\r\n"
    )
    result = plan(db_path, str(ids_file), tmp_path)
    assert (result.ids_in_manifest, result.ids_rejected, result.todo) == (3, 9, 3)
    todo = pq.read_table(result.todo_path).to_pylist()
    assert todo == [
        {"creation_id": "good-1", "needs_status": True, "never_seen": True},
        {"creation_id": "good_2", "needs_status": True, "never_seen": True},
        {"creation_id": "good-3", "needs_status": True, "never_seen": True},
    ]
    with connection.open_database(db_path) as con:
        rows = con.execute(
            "SELECT creation_id, stage, message FROM sync_errors ORDER BY message"
        ).fetchall()
        statuses = con.execute("SELECT creation_id FROM creation_status ORDER BY 1").fetchall()
    assert len(rows) == 9 and all(stage == "manifest" for _, stage, _ in rows)
    assert any("longer than 128" in message for _, _, message in rows)
    assert all("ids.txt line" in message for _, _, message in rows)
    assert max(len(cid) for cid, _, _ in rows) <= 129
    # Planning only reads the tables: an ID's status row comes with its chunk's write.
    assert statuses == []


def test_finished_ids_are_subtracted_and_known_succeed_skips_the_status_check(
    tmp_path: Path, db_path: Path, manifest: Manifest
) -> None:
    ids_file = manifest("done-ok\ndone-failed\nsucceed-no-detail\nstill-pending\nnew-one\n")
    with connection.open_database(db_path) as con:
        writes.upsert_statuses(
            con,
            [
                StatusRow("done-ok", "succeed", 1.0, NOW, None),
                StatusRow("done-failed", "failed", None, NOW, None),
                StatusRow("succeed-no-detail", "succeed", 1.0, NOW, "detail: HTTP 500"),
                StatusRow("still-pending", "pending", 0.0, NOW, None),
            ],
            "r0",
        )
        con.execute(
            "INSERT INTO creations (creation_id, first_synced_at, last_synced_at) "
            "VALUES ('done-ok', now(), now())"
        )
    result = plan(db_path, str(ids_file), tmp_path)
    assert (result.ids_in_manifest, result.ids_skipped, result.todo) == (5, 2, 3)
    chunks = list(iter_chunks(result.todo_path, 2))
    assert chunks == [(["still-pending"], ["succeed-no-detail"], []), (["new-one"], [], [])]
    # Detail-first: only the ID never seen before is asked for its detail first.
    first = list(iter_chunks(result.todo_path, 10, detail_first=True))
    assert first == [(["still-pending"], ["succeed-no-detail"], ["new-one"])]
    again = plan(db_path, str(ids_file), tmp_path, refresh=True, run_id="r2")
    assert again.todo == 5 and again.ids_skipped == 0
    assert [known for _, known, _ in iter_chunks(again.todo_path, 10)] == [[]]


def test_globs_combine_files(tmp_path: Path, db_path: Path, manifest: Manifest) -> None:
    manifest(["one", "two"], name="m/a.txt")
    manifest(["two", "three"], name="m/b.txt")
    result = plan(db_path, str(tmp_path / "m" / "*.txt"), tmp_path)
    assert result.ids_in_manifest == 3


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00"), "binary file"),
    ],
)
def test_unreadable_manifests_fail_with_the_file_named(
    tmp_path: Path, setup: object, message: str
) -> None:
    target = tmp_path / "ids.txt"
    setup(target)  # type: ignore[operator]
    with pytest.raises(ManifestError, match=message) as info:
        manifest_files(str(target))
    assert str(target) in str(info.value)


def test_a_glob_matching_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no file matches"):
        manifest_files(str(tmp_path / "*.txt"))


def test_a_failed_plan_keeps_what_the_database_had(tmp_path: Path, db_path: Path) -> None:
    with connection.open_database(db_path) as con:
        writes.upsert_statuses(con, [StatusRow("kept", "pending", 0.0, NOW, None)], "r0")
    with pytest.raises(ManifestError):
        plan(db_path, str(tmp_path / "missing.txt"), tmp_path)
    with connection.open_database(db_path) as con:
        assert con.execute("SELECT creation_id FROM creation_status").fetchall() == [("kept",)]


def test_chunks_grow_so_a_run_has_a_bounded_number() -> None:
    assert chunk_size_for(1_000, 250, 500) == 250
    assert chunk_size_for(1_000_000, 250, 500) == 2_000
    assert chunk_size_for(1_000_001, 250, 500) == 2_001
    assert chunk_size_for(0, 250, 500) == 250


def test_default_chunks_last_about_half_a_minute_at_the_rate_limit() -> None:
    assert auto_chunk_size(500) == 250  # the API's default limit: the floor
    assert auto_chunk_size(2_000) == 500
    assert auto_chunk_size(1_000_000) == 1_000  # a raised limit: the ceiling


def test_duplicates_rejects_and_finished_ids_plan_in_manifest_order(
    tmp_path: Path, db_path: Path, manifest: Manifest
) -> None:
    ids = [f"id-{n:03d}" for n in range(40)]
    ids_file = manifest([*ids, *ids[:5], "bad id"])
    with connection.open_database(db_path) as con:
        con.execute(
            "INSERT INTO creation_status (creation_id, status, first_seen_at, checks) "
            "SELECT 'id-0' || lpad(n::VARCHAR, 2, '0'), 'failed', now(), 1 FROM range(10) t(n)"
        )
    result = plan(db_path, str(ids_file), tmp_path)
    assert (result.ids_in_manifest, result.ids_rejected, result.ids_skipped) == (40, 1, 10)
    todo = [row["creation_id"] for row in pq.read_table(result.todo_path).to_pylist()]
    assert todo == ids[10:]  # manifest order
    assert sorted(p.name for p in tmp_path.glob("todo*")) == ["todo.parquet"]
