"""The DuckDB store on a real file: schema, upserts, run rows, chunk atomicity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from haiper_sync.api.models import CreationDetail
from haiper_sync.rows import ErrorRecord, StatusRow
from haiper_sync.simulator import creation_detail, generate_ids
from haiper_sync.store import connection, runs, writes
from haiper_sync.store.migrations import SCHEMA_VERSION, schema_version
from haiper_sync.store.sql import sql_literal
from haiper_sync.store.writes import write_chunk
from haiper_sync.summary import RunCounts
from haiper_sync.sync.assemble import assemble_chunk
from haiper_sync.sync.fetch import DetailBatch, DetailOutcome, StatusBatch, StatusOutcome
from haiper_sync.sync.normalize import normalize_detail
from tests.support.expected import table_counts

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def detail_outcome(creation_id: str, **changes: object) -> DetailOutcome:
    value = creation_detail(creation_id) | changes
    import json

    raw = json.dumps({"status": "success", "value": value})
    return DetailOutcome(creation_id, NOW, CreationDetail.model_validate(value), raw)


def test_schema_is_created_once_and_versioned(db_path: Path) -> None:
    with connection.open_database(db_path) as con:
        assert schema_version(con) == SCHEMA_VERSION
    with connection.open_database(db_path) as con:  # reopening migrates nothing twice
        rows = con.execute("SELECT count(*) FROM schema_version").fetchall()[0]
        assert rows == (SCHEMA_VERSION,)
        assert set(table_counts(con)) == {
            "creations",
            "creation_outputs",
            "creation_status",
            "sync_runs",
            "sync_errors",
        }


def test_upsert_creations_counts_inserts_and_updates_and_keeps_first_synced(
    db_path: Path,
) -> None:
    ids = generate_ids(5, seed=1)
    rows = [
        normalize_detail(i, CreationDetail.model_validate(creation_detail(i)), "{}", NOW, "r1")[0]
        for i in ids
    ]
    later = datetime(2026, 11, 29, tzinfo=UTC)
    again = [
        normalize_detail(i, CreationDetail.model_validate(creation_detail(i)), "{}", later, "r2")[0]
        for i in ids[:2]
    ]
    with connection.open_database(db_path) as con:
        assert writes.upsert_creations(con, rows) == (5, 0)
        assert writes.upsert_creations(con, again) == (0, 2)
        assert writes.upsert_creations(con, []) == (0, 0)
        first, last, run = con.execute(
            "SELECT first_synced_at, last_synced_at, last_run_id FROM creations "
            "WHERE creation_id = ?",
            [ids[0]],
        ).fetchall()[0]
        assert (first, last, run) == (NOW, later, "r2")
        assert table_counts(con)["creations"] == 5


def test_replace_outputs_removes_outputs_that_disappeared(db_path: Path) -> None:
    creation_id = generate_ids(1, seed=2)[0]
    full = CreationDetail.model_validate({"outputs": [{"id": "a"}, {"id": "b"}, {"id": "c"}]})
    fewer = CreationDetail.model_validate({"outputs": [{"id": "b", "media_url": "new"}]})
    with connection.open_database(db_path) as con:
        _, outputs = normalize_detail(creation_id, full, "{}", NOW, "r")
        assert writes.replace_outputs(con, [creation_id], outputs) == 3
        _, outputs = normalize_detail(creation_id, fewer, "{}", NOW, "r")
        writes.replace_outputs(con, [creation_id], outputs)
        got = con.execute("SELECT output_id, position, media_url FROM creation_outputs").fetchall()
        assert got == [("b", 0, "new")]


def test_status_upsert_keeps_the_last_known_status_when_a_check_fails(db_path: Path) -> None:
    with connection.open_database(db_path) as con:
        writes.upsert_statuses(con, [StatusRow("x", "processing", 0.4, NOW, None)], "r1")
        writes.upsert_statuses(con, [StatusRow("x", None, None, None, "HTTP 500")], "r2")
        row = con.execute(
            "SELECT status, progress, last_checked_at, checks, last_run_id, last_error "
            "FROM creation_status"
        ).fetchall()[0]
        assert row == ("processing", 0.4, NOW, 1, "r2", "HTTP 500")
        writes.upsert_statuses(con, [StatusRow("x", "succeed", 1.0, NOW, None)], "r3")
        row = con.execute("SELECT status, checks, last_error FROM creation_status").fetchall()[0]
        assert row == ("succeed", 2, None)


def test_first_seen_is_the_start_of_the_run_that_first_listed_the_id(db_path: Path) -> None:
    with connection.open_database(db_path) as con:
        runs.start_run(con, "r1", manifest="m", refresh=False)
        started = con.execute("SELECT started_at FROM sync_runs").fetchall()[0][0]
        later = NOW + timedelta(days=400)
        writes.upsert_statuses(con, [StatusRow("x", "processing", 0.4, later, None)], "r1")
        writes.upsert_statuses(con, [StatusRow("x", "succeed", 1.0, later, None)], "r2")
        row = con.execute("SELECT first_seen_at, last_checked_at FROM creation_status").fetchall()
        assert row == [(started, later)]


def test_errors_are_one_row_per_id_and_stage_per_run(db_path: Path) -> None:
    errors = [
        ErrorRecord("a", "status", "HTTP 404", 404, "H-10002003"),
        ErrorRecord("a", "status", "HTTP 404 again", 404, "H-10002003"),
        ErrorRecord("b", "detail", "HTTP 500", 500, None, None, True),
    ]
    with connection.open_database(db_path) as con:
        writes.insert_errors(con, errors, "r1")
        writes.insert_errors(con, errors[:1], "r2")
        assert table_counts(con)["sync_errors"] == 3
        deferred = con.execute("SELECT creation_id FROM sync_errors WHERE deferred").fetchall()
        assert deferred == [("b",)]


def test_run_rows_accumulate_counters(db_path: Path) -> None:
    with connection.open_database(db_path) as con:
        runs.start_run(con, "r1", manifest="m.txt", refresh=False, flow_run_id="f1")
        runs.add_run_counts(con, "r1", RunCounts(requests=3, ids_checked=2))
        runs.add_run_counts(con, "r1", RunCounts(requests=4))
        runs.finish_run(con, "r1", state="completed")
        run = runs.fetch_run(con, "r1")
        assert (run.requests, run.ids_checked, run.state) == (7, 2, "completed")
        assert run.finished_at is not None and run.flow_run_id == "f1"
        with pytest.raises(TypeError):
            RunCounts(bogus=1)  # type: ignore[call-arg]  # a counter sync_runs has no column for


def test_a_chunk_is_all_or_nothing(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = generate_ids(3, seed=4)
    statuses = StatusBatch([StatusOutcome(i, NOW, "succeed", 1.0) for i in ids], requests=3)
    details = DetailBatch([detail_outcome(i) for i in ids], requests=3)
    rows = assemble_chunk("r1", statuses, details)
    with connection.open_database(db_path) as con:
        runs.start_run(con, "r1", manifest="m", refresh=False)

        def explode(*args: object, **kwargs: object) -> int:
            raise RuntimeError("disk full")

        monkeypatch.setattr(writes, "insert_errors", explode)
        with pytest.raises(RuntimeError):
            write_chunk(con, "r1", rows)
        assert table_counts(con) | {"sync_runs": 0} == dict.fromkeys(table_counts(con), 0)
        monkeypatch.undo()
        counts = write_chunk(con, "r1", rows)
        assert counts.ids_fetched == 3 and counts.requests == 6
        assert table_counts(con)["creations"] == 3


def test_assemble_merges_detail_errors_into_status_rows() -> None:
    statuses = StatusBatch(
        [StatusOutcome("a", NOW, "succeed", 1.0), StatusOutcome("p", NOW, "pending", 0.0)]
    )
    broken = ErrorRecord("a", "parse", "no value", 200, raw_body="{}", deferred=True)
    details = DetailBatch([DetailOutcome("a", NOW, error=broken), detail_outcome("k")], requests=2)
    rows = assemble_chunk("r1", statuses, details)
    by_id = {s.creation_id: s for s in rows.statuses}
    assert by_id["a"].status == "succeed" and by_id["a"].error == "no value"
    assert by_id["k"].status is None  # fetched without a check: status untouched
    assert [c.creation_id for c in rows.creations] == ["k"]
    assert rows.counts.ids_pending == 1 and rows.counts.ids_errored == 1


def test_reading_a_file_while_nothing_holds_it(db_path: Path) -> None:
    with connection.open_database(db_path):
        pass
    con = duckdb.connect(str(db_path), read_only=True)
    con.close()


def test_runs_left_running_by_a_killed_process_are_marked_abandoned(db_path: Path) -> None:
    with connection.open_database(db_path) as con:
        runs.start_run(con, "dead", manifest="m", refresh=False)
        runs.start_run(con, "done", manifest="m", refresh=False)
        runs.finish_run(con, "done", state="completed")
        assert runs.abandon_stale_runs(con) == 1
        assert runs.abandon_stale_runs(con) == 0
        states = dict(con.execute("SELECT run_id, state FROM sync_runs").fetchall())
    assert states == {"dead": "abandoned", "done": "completed"}


@pytest.mark.parametrize("text", ["plain", "it's", "''", "/tmp/o'brien/todo.parquet", ""])
def test_sql_literal_reads_back_as_the_same_text(text: str) -> None:
    literal = sql_literal(text)
    assert literal.startswith("'") and literal.endswith("'")
    assert duckdb.connect().execute(f"SELECT {literal}").fetchall() == [(text,)]


def test_manifest_rejects_are_one_row_per_entry_placed_where_it_first_stands(
    db_path: Path,
) -> None:
    entries = """(SELECT * FROM (VALUES ('a/b', 3, 0, 2), ('a/b', 1, 1, 5), ('x y', 7, 1, 6))
                  AS t(raw, line_no, file_no, seq))"""
    places = ["ids.txt line", "more.parquet row"]
    with connection.open_database(db_path) as con:

        def record() -> int:
            return writes.insert_manifest_rejects(
                con, run_id="r1", entries=entries, places=places, reason="'bad ' || raw"
            )

        assert record() == 2
        assert record() == 0  # the same entries again: no new row
        rows = con.execute(
            "SELECT creation_id, stage, message, deferred FROM sync_errors ORDER BY creation_id"
        ).fetchall()
    assert rows == [
        ("a/b", "manifest", "rejected manifest entry (ids.txt line 3): bad a/b", False),
        ("x y", "manifest", "rejected manifest entry (more.parquet row 7): bad x y", False),
    ]
