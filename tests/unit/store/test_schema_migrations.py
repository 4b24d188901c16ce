"""Files made by older haiper-sync versions are upgraded in place; newer ones are refused."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from haiper_sync.store import connection, migrations

VIEWS = {
    "creation_timings",
    "creations_overview",
    "daily_creations",
    "pending_creations",
    "recent_errors",
    "outputs_flat",
    "media_not_archived",
}


def make_v1_database(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write a file as the first release did: migration 1 only, with a few rows."""
    con = duckdb.connect(str(path))
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        m.setattr(migrations, "SCHEMA_VERSION", 1)
        assert migrations.migrate(con) == 1
    con.execute(
        """
        INSERT INTO sync_runs (run_id, started_at, finished_at, state, manifest, requests)
        VALUES ('old-run', TIMESTAMPTZ '2026-10-01 10:00:00+00', NULL, 'completed', 'a.txt', 5),
               ('new-run', TIMESTAMPTZ '2026-10-02 10:00:00+00',
                TIMESTAMPTZ '2026-10-02 10:01:00+00', 'completed', 'a.txt', 7);
        INSERT INTO creation_status (creation_id, status, progress, first_seen_at, checks)
        VALUES ('c-ok', 'succeed', 1.0, TIMESTAMPTZ '2026-10-01 10:00:00+00', 1),
               ('c-bad', 'failed', NULL, TIMESTAMPTZ '2026-10-01 10:00:00+00', 1),
               ('c-wait', 'processing', 0.4, TIMESTAMPTZ '2026-10-01 09:00:00+00', 2),
               ('nf-1', NULL, NULL, TIMESTAMPTZ '2026-10-01 11:00:00+00', 0);
        INSERT INTO creations (creation_id, username, type, prompt, create_time, update_time,
                               width, height, fps, output_count, like_count,
                               first_synced_at, last_synced_at)
        VALUES ('c-ok', 'iris', 'text2video', 'a fox', TIMESTAMPTZ '2026-09-30 23:30:00+00',
                TIMESTAMPTZ '2026-09-30 23:35:00+00', 1280, 720, 24, 2, 9,
                TIMESTAMPTZ '2026-10-01 10:00:05+00', TIMESTAMPTZ '2026-10-01 10:00:05+00');
        INSERT INTO creation_outputs VALUES ('c-ok', 'o1', 0, 'https://m/1', NULL),
                                            ('c-ok', 'o2', 1, 'https://m/2', 'https://t/2');
        INSERT INTO sync_errors (run_id, creation_id, stage, http_status, error_code, message,
                                 occurred_at)
        VALUES ('old-run', 'nf-1', 'status', 404, 'H-10002003', 'gone', now()),
               ('new-run', 'nf-1', 'status', 404, 'H-10002003', 'still gone', now());
        """
    )
    con.close()


def test_a_version_1_file_is_upgraded_on_open_with_its_data_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.duckdb"
    make_v1_database(path, monkeypatch)

    with connection.open_database(path) as con:
        assert migrations.schema_version(con) == migrations.SCHEMA_VERSION > 1
        counts = {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
            for t in ("creations", "creation_outputs", "creation_status", "sync_runs")
        }
        assert counts == {
            "creations": 1,
            "creation_outputs": 2,
            "creation_status": 4,
            "sync_runs": 2,
        }
        overview = con.execute(
            "SELECT creation_id, status, prompt, username FROM creations_overview ORDER BY 1"
        ).fetchall()
        assert overview == [
            ("c-bad", "failed", None, None),
            ("c-ok", "succeed", "a fox", "iris"),
            ("c-wait", "processing", None, None),
            ("nf-1", None, None, None),
        ]
        # 23:30 UTC is already October 1st in Tokyo: the day must still be the UTC one.
        con.execute("SET TimeZone = 'Asia/Tokyo'")
        daily = con.execute("SELECT * FROM daily_creations").fetchall()
        assert [tuple(r[:5]) for r in daily] == [
            (date(2026, 9, 30), 1, 1, 0, 0.0),
            (None, 3, 0, 1, 0.333),
        ]
        assert daily[0][5] == 300.0 and daily[1][5] is None
        pending = con.execute(
            "SELECT creation_id, checks, age > INTERVAL 0 SECOND FROM pending_creations"
        ).fetchall()
        assert pending == [("c-wait", 2, True), ("nf-1", 0, True)]
        errors = con.execute("SELECT run_id, message FROM recent_errors").fetchall()
        assert errors == [("new-run", "still gone")]
        flat = con.execute(
            "SELECT output_id, prompt, username, type FROM outputs_flat ORDER BY position"
        ).fetchall()
        assert flat == [
            ("o1", "a fox", "iris", "text2video"),
            ("o2", "a fox", "iris", "text2video"),
        ]

        # Version 3 dropped the per-creation tables' key indexes, keeping columns and rules.
        keys = con.execute(
            "SELECT table_name, constraint_type FROM duckdb_constraints() "
            "WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE') ORDER BY 1"
        ).fetchall()
        assert keys == [
            ("schema_version", "PRIMARY KEY"),
            ("sync_errors", "PRIMARY KEY"),
            ("sync_runs", "PRIMARY KEY"),
        ]
        with pytest.raises(duckdb.ConstraintException):
            con.execute("INSERT INTO creation_status (creation_id) VALUES ('no-first-seen')")

    # A second open finds nothing to do.
    with connection.open_database(path) as con:
        versions = con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        assert [v for (v,) in versions] == list(range(1, migrations.SCHEMA_VERSION + 1))


def test_a_fresh_file_has_every_view(tmp_path: Path) -> None:
    with connection.open_database(tmp_path / "new.duckdb") as con:
        views = {
            name
            for (name,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_type = 'VIEW'"
            ).fetchall()
        }
        assert views == VIEWS
        for view in VIEWS:
            assert con.execute(f"SELECT count(*) FROM {view}").fetchall() == [(0,)]


def test_a_file_newer_than_the_code_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.duckdb"
    with connection.open_database(path) as con:
        con.execute("INSERT INTO schema_version VALUES (?, now())", [migrations.SCHEMA_VERSION + 1])
        con.execute("CREATE TABLE from_the_future (x INTEGER)")

    with pytest.raises(RuntimeError) as caught, connection.open_database(path):
        pass
    message = str(caught.value)
    assert f"v{migrations.SCHEMA_VERSION + 1} is newer than this haiper-sync" in message
    assert "upgrade haiper-sync" in message

    con = duckdb.connect(str(path), read_only=True)
    try:
        assert migrations.schema_version(con) == migrations.SCHEMA_VERSION + 1
        assert con.execute("SELECT count(*) FROM from_the_future").fetchall() == [(0,)]
    finally:
        con.close()


def test_an_upgraded_file_starts_each_ids_history_with_its_latest_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.duckdb"
    make_v1_database(path, monkeypatch)
    with connection.open_database(path) as con:
        history = con.execute(
            "SELECT creation_id, status, progress, observed_at FROM creation_status_history "
            "ORDER BY creation_id"
        ).fetchall()
        timings = con.execute(
            "SELECT creation_id, observations FROM creation_timings ORDER BY creation_id"
        ).fetchall()
    seen = datetime(2026, 10, 1, 10, tzinfo=UTC)
    assert [(i, s, p) for i, s, p, _ in history] == [
        ("c-bad", "failed", None),
        ("c-ok", "succeed", 1.0),
        ("c-wait", "processing", 0.4),
    ]  # nf-1 never had a status
    assert history[0][3] == seen
    assert timings == [("c-bad", 1), ("c-ok", 1), ("c-wait", 1)]
