"""Chunks set aside while the file is held land exactly as a direct write would have."""

from __future__ import annotations

import errno
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from haiper_sync.api.models import CreationDetail
from haiper_sync.rows import ErrorRecord
from haiper_sync.simulator import creation_detail, generate_ids
from haiper_sync.store import connection, runs
from haiper_sync.store.set_aside import (
    set_aside_chunk,
    set_aside_run_end,
    set_aside_waiting,
    write_set_aside,
)
from haiper_sync.store.writes import write_chunk
from haiper_sync.summary import RunSummary
from haiper_sync.sync.assemble import assemble_chunk
from haiper_sync.sync.fetch import DetailBatch, DetailOutcome, StatusBatch, StatusOutcome

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def chunk_rows(run_id: str):  # type: ignore[no-untyped-def]
    ids = generate_ids(4, seed=61)
    statuses = StatusBatch(
        [StatusOutcome(i, NOW, "succeed", 1.0) for i in ids[:3]]
        + [StatusOutcome(ids[3], NOW, error=ErrorRecord(ids[3], "status", "HTTP 500", 500))],
        requests=5,
        retries=1,
    )
    details = DetailBatch(
        [
            DetailOutcome(
                i,
                NOW,
                CreationDetail.model_validate(creation_detail(i)),
                json.dumps({"value": creation_detail(i)}),
            )
            for i in ids[:3]
        ],
        requests=3,
    )
    return assemble_chunk(run_id, statuses, details)


def run_summary(run_id: str) -> RunSummary:
    return RunSummary(run_id=run_id, manifest="m", started_at=NOW)


def dump(db: Path) -> dict[str, list[tuple[object, ...]]]:
    with connection.open_database(db, read_only=True) as con:
        return {
            t: sorted(con.execute(f"SELECT * EXCLUDE ({x}) FROM {t}").fetchall(), key=repr)
            for t, x in [
                ("creations", "first_synced_at, last_synced_at"),
                ("creation_outputs", "position"),
                ("creation_status", "first_seen_at"),
                ("sync_errors", "occurred_at"),
                ("sync_runs", "started_at, finished_at"),
            ]
        }


def test_a_spilled_chunk_and_run_end_land_like_a_direct_write(tmp_path: Path) -> None:
    direct, later = tmp_path / "direct.duckdb", tmp_path / "later.duckdb"
    for db in (direct, later):
        with connection.open_database(db) as con:
            runs.start_run(con, "r1", manifest="m", refresh=False)
    with connection.open_database(direct) as con:
        write_chunk(con, "r1", chunk_rows("r1"))
        runs.finish_run(con, "r1", state="completed")

    set_aside_chunk(later, "r1", 0, chunk_rows("r1"))
    set_aside_run_end(later, run_summary("r1"), "completed", None)
    assert len(set_aside_waiting(later)) == 2
    with connection.open_database(later) as con:
        assert write_set_aside(con, later) == 2
    assert set_aside_waiting(later) == []
    assert not Path(f"{later}.set-aside").exists()  # no empty folder left behind
    assert dump(later) == dump(direct)


def test_a_run_that_never_got_its_row_gets_it_with_its_end(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    with connection.open_database(db):
        pass
    set_aside_run_end(db, run_summary("r9"), "failed", "the file was held")
    with connection.open_database(db) as con:
        assert write_set_aside(con, db) == 1
        run = runs.fetch_run(con, "r9")
    assert (run.state, run.message, run.manifest) == ("failed", "the file was held", "m")
    assert run.started_at == NOW


def test_chunks_set_aside_by_an_earlier_version_are_still_written(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    with connection.open_database(db) as con:
        runs.start_run(con, "r1", manifest="m", refresh=False)
    folder = set_aside_chunk(db, "r1", 0, chunk_rows("r1"))
    legacy = Path(f"{db}.pending")
    folder.parent.rename(legacy)
    with connection.open_database(db) as con:
        assert write_set_aside(con, db) == 1
        assert runs.fetch_run(con, "r1").ids_fetched == 3
    assert not legacy.exists()


def test_a_half_written_spill_is_never_ingested(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    partial = Path(f"{db}.set-aside") / ".partial-abc"
    partial.mkdir(parents=True)
    (partial / "meta.json").write_text("{")
    with connection.open_database(db) as con:
        assert write_set_aside(con, db) == 0


def test_a_full_disk_sets_the_runs_end_aside_in_the_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from haiper_sync.store import set_aside

    db = tmp_path / "x.duckdb"
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path / "tmp"))
    real = set_aside._publish_in

    def full_beside_the_file(base: Path, name: str, write: Any) -> Path:
        if base == set_aside.set_aside_dir(db):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(base, name, write)

    with monkeypatch.context() as full:
        full.setattr(set_aside, "_publish_in", full_beside_the_file)
        folder = set_aside_run_end(db, run_summary("r7"), "failed", "disk full writing x")
    assert folder.parent == set_aside.spare_set_aside_dir(db)
    assert str(folder).startswith(str(tmp_path / "tmp"))
    with connection.open_database(db) as con:
        assert write_set_aside(con, db) == 1
        assert runs.fetch_run(con, "r7").state == "failed"
    assert set_aside_waiting(db) == []
