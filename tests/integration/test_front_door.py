"""The front door: a user's mistakes are caught before Prefect starts and told in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from haiper_sync.simulator import SimulatorServer, generate_ids
from tests.support.manifest import Manifest
from tests.support.paths import ROOT


@pytest.fixture
def five_ids(manifest: Manifest) -> Path:
    return manifest(generate_ids(5, seed=71))


def our_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        (["--concurrency", "0"], {}, "--concurrency must be between 1 and 256 (got 0)"),
        (["--rate-limit", "0"], {}, "--rate-limit must be between 1 and 1,000,000 (got 0)"),
        (["--rate-limit", "-5"], {}, "--rate-limit must be between 1 and 1,000,000 (got -5)"),
        (["--chunk-size", "20000"], {}, "--chunk-size must be between 0 and 10,000 (got 20000)"),
        ([], {"HAIPER_CONCURRENCY": "999"}, "HAIPER_CONCURRENCY must be between 1 and 256"),
        ([], {"HAIPER_RATE_LIMIT": "-5"}, "HAIPER_RATE_LIMIT must be between 1 and 1,000,000"),
        (
            [],
            {"HAIPER_RATE_LIMIT": "5000000"},
            "HAIPER_RATE_LIMIT must be between 1 and 1,000,000 (got 5000000)",
        ),
        (["--api-url", "localhost:8765"], {}, "--api-url must be an http(s) URL"),
        ([], {"HAIPER_API_URL": "ftp://files"}, "HAIPER_API_URL must be an http(s) URL"),
        ([], {"HAIPER_API_KEY": ""}, "no API key: export HAIPER_API_KEY"),
    ],
)
def test_a_mistake_is_one_line_before_anything_starts(
    flags: list[str],
    env: dict[str, str],
    expected: str,
    five_ids: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HAIPER_API_KEY", "k")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    db = tmp_path / "out.duckdb"
    code = main(["sync", "--manifest", str(five_ids), "--db", str(db), *flags])
    lines = our_lines(capsys.readouterr().err)
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith(f"haiper-sync: {expected}")
    assert not db.exists()


def test_db_pointing_at_a_directory_is_named(
    five_ids: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HAIPER_API_KEY", "k")
    code = main(["sync", "--manifest", str(five_ids), "--db", str(tmp_path)])
    lines = our_lines(capsys.readouterr().err)
    example = tmp_path / "haiper.duckdb"
    assert code == 1
    assert lines == [f"haiper-sync: --db {tmp_path} is a directory; give a file, e.g. {example}"]


def test_a_refused_flag_never_loads_prefect(five_ids: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from cli.main import main\n"
        f"code = main(['sync', '--manifest', {str(five_ids)!r}, '--rate-limit', '0'])\n"
        "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'prefect'}))\n"
    )
    env = os.environ | {"HAIPER_API_KEY": "k"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split("\n")[0] == "1 []"


@pytest.mark.integration
def test_a_wrong_key_is_one_line_without_a_traceback(
    sim: SimulatorServer, five_ids: Path, tmp_path: Path
) -> None:
    env = os.environ | {
        "HAIPER_API_KEY": "not-the-key",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "sync", "--manifest", str(five_ids),
         "--db", str(tmp_path / "k.duckdb"), "--api-url", sim.url],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=180, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    # Prefect's own INFO lines come and go around it; ours is the one line that says why.
    ours = [line for line in out.stderr.splitlines() if line.startswith("haiper-sync:")]
    assert ours == [
        f"haiper-sync: sync failed: the API at {sim.url} refused the key "
        "(HTTP 401: invalid API key); check HAIPER_API_KEY"
    ]
    assert "not-the-key" not in out.stderr + out.stdout


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_server", "api_key_env")
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "creation_id,prompt,created\nabc-1,a cat,2026-01-01\nabc-2,a dog,2026-01-02\n",
            "no valid creation ID among 3 entries, e.g. line 1: 'creation_id,prompt,created'; "
            "a manifest holds one creation ID per line",
        ),
        ('["abc-1", "abc-2"]\n', "no valid creation ID among 1 entries, e.g. line 1:"),
        ("", "no creation ID in it (empty, or comments)"),
        ("# only a comment\n\n", "no creation ID in it (empty, or comments)"),
    ],
)
def test_a_manifest_with_no_valid_id_fails_the_run_in_one_line(
    content: str,
    expected: str,
    sim: SimulatorServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    manifest: Manifest,
) -> None:
    import duckdb

    # A text manifest (CSV files with a creation_id column are read as CSV: see
    # tests/unit/sync/test_manifest_formats.py).
    ids_file = manifest(content)
    db = tmp_path / "none.duckdb"
    code = main(["sync", "--manifest", str(ids_file), "--db", str(db), "--api-url", sim.url])
    ours = [line for line in capsys.readouterr().err.splitlines() if "haiper-sync:" in line]
    assert code == 1 and len(ours) == 1
    assert ours[0].startswith(f"haiper-sync: sync failed: manifest {ids_file}: {expected}")
    assert sim.stats.snapshot()["total"] == 0
    with duckdb.connect(str(db), read_only=True) as con:
        state = con.execute("SELECT state, ids_rejected FROM sync_runs").fetchall()
        rejects = con.execute(
            "SELECT count(*) FROM sync_errors WHERE stage = 'manifest'"
        ).fetchone()
    assert state[0][0] == "failed" and rejects == (state[0][1],)


def _their_file(path: Path, *tables: str) -> list[tuple[str, str]]:
    """A DuckDB file with someone else's tables; returns its (table, type) listing."""
    import duckdb

    with duckdb.connect(str(path)) as con:
        for table in tables:
            con.execute(f"CREATE TABLE {table} AS SELECT 42 AS answer")
    return _listing(path)


def _listing(path: Path) -> list[tuple[str, str]]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "SELECT table_name, table_type FROM information_schema.tables ORDER BY ALL"
        ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def test_someone_elses_file_is_refused_before_anything_starts(
    five_ids: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HAIPER_API_KEY", "k")
    db = tmp_path / "theirs.duckdb"
    before = _their_file(db, "sales", "creations")
    code = main(["sync", "--manifest", str(five_ids), "--db", str(db)])
    lines = our_lines(capsys.readouterr().err)
    assert code == 1 and lines == [
        f"haiper-sync: {db}: has tables (creations, sales) but no haiper-sync schema: not ours, "
        "left untouched; give another --db, or --init-existing to add haiper-sync's tables to it"
    ]
    assert _listing(db) == before

    assert main(["status", "--db", str(db)]) == 1
    assert our_lines(capsys.readouterr().err) == [
        f"haiper-sync: {db} is not a haiper-sync database (no schema_version table); "
        "`haiper-sync query` can still read it"
    ]


def test_migrations_refuse_a_foreign_file_and_fail_without_a_trace(tmp_path: Path) -> None:
    from haiper_sync.errors import ForeignDatabase, SchemaError
    from haiper_sync.store.connection import open_database

    db = tmp_path / "theirs.duckdb"
    before = _their_file(db, "creations")
    with pytest.raises(ForeignDatabase), open_database(db):
        pass
    assert _listing(db) == before
    # Told to share the file, the first migration collides with their `creations` table: it
    # rolls back whole, the schema_version table included.
    collides = "cannot apply haiper-sync's schema v1: Catalog Error"
    with pytest.raises(SchemaError, match=collides), open_database(db, init_existing=True):
        pass
    assert _listing(db) == before
    other = tmp_path / "shared.duckdb"
    _their_file(other, "sales")
    with open_database(other, init_existing=True) as con:
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert {"sales", "creations", "schema_version"} <= tables
        assert con.execute("SELECT answer FROM sales").fetchall() == [(42,)]


def test_status_after_the_demo_points_at_the_demo_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HAIPER_DB", raising=False)
    assert main(["status"]) == 1
    assert our_lines(capsys.readouterr().err) == [
        "haiper-sync: no database at haiper.duckdb; run `haiper-sync sync` or `make demo` first"
    ]
    (tmp_path / "haiper-demo.duckdb").write_bytes(b"")
    assert main(["status"]) == 1
    assert our_lines(capsys.readouterr().err) == [
        "haiper-sync: no database at haiper.duckdb; the demo wrote haiper-demo.duckdb: "
        "add --db haiper-demo.duckdb"
    ]


def test_the_simulator_on_a_busy_port_or_a_public_host_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["simulate", "--port", str(port)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no banner for a server that never listened
    assert our_lines(captured.err) == [
        f"haiper-sync: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert main(["simulate", "--host", "0.0.0.0", "--port", "0"]) == 1
    assert our_lines(capsys.readouterr().err) == [
        "haiper-sync: --host 0.0.0.0 would let other machines reach the simulator; it serves "
        "on loopback only unless --allow-remote says otherwise"
    ]


def test_the_simulator_banner_shows_the_port_it_got() -> None:
    import re
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "simulate", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        found = re.fullmatch(
            r"Simulated Haiper API on (http://127\.0\.0\.1:(\d+)) \(Ctrl-C to stop\), "
            r"accepting the key sim-demo-key\n",
            banner,
        )
        assert found and int(found.group(2)) > 0, banner
        with urllib.request.urlopen(f"{found.group(1)}/_sim/stats", timeout=10) as answer:
            assert answer.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.integration
def test_make_server_on_another_port_tells_the_ui(tmp_path: Path) -> None:
    import json
    import time
    import urllib.request

    from tests.support.dead_port import dead_port

    port = dead_port()
    env = os.environ | {"PREFECT_HOME": str(tmp_path), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    for name in ("PREFECT_API_URL", "PREFECT_SERVER_API_PORT", "PREFECT_UI_API_URL"):
        env.pop(name, None)
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "server", f"PREFECT_PORT={port}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        settings = None
        while time.monotonic() < deadline and settings is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui-settings", timeout=2) as r:
                    settings = json.loads(r.read())
            except OSError:
                time.sleep(0.5)
        assert settings is not None, "the server never answered"
        assert settings["api_url"] == f"http://127.0.0.1:{port}/api"
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_a_table_cell_cut_short_says_so() -> None:
    from haiper_sync.analyst.render import MAX_CELL, render

    long = "a prompt " * 20
    table = render(["prompt", "n"], [(long, 1), ("short", 2)]).splitlines()
    assert table[2].startswith(long[: MAX_CELL - 1] + "…  1")
    assert table[3].startswith("short") and "…" not in table[3]
    assert long.strip() in render(["prompt", "n"], [(long, 1)], "csv")


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_server")
def test_the_demos_counts_line_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user's own key is not the simulator's: the demo uses the simulator's. (Set, not deleted,
    # so that the demo's own setting is undone after the test.)
    monkeypatch.setenv("HAIPER_API_KEY", "a-users-real-key")
    db, manifest = tmp_path / "demo.duckdb", tmp_path / "demo.txt"
    args = ["demo", "--n", "20", "--db", str(db), "--manifest", str(manifest), "--latency-ms", "0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert (
        "20 generated IDs, plus 2 IDs the API does not know (404) and 1 line that is not an ID"
        in out
    )
    assert f"manifest  {manifest}: 22 IDs, 1 rejected, 0 already finished" in out
    checked = int(out.split("checked   ")[1].split()[0])
    assert checked == 20  # the 2 unknown IDs got a 404, not a status
    assert "errors    2 IDs" in out


def test_every_option_says_what_it_does(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from cli.main import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    silent = {
        f"{name} {'/'.join(action.option_strings)}"
        for name, sub in commands.choices.items()
        for action in sub._actions
        if action.option_strings and not action.help
    }
    assert silent == set()
    with pytest.raises(SystemExit):
        main(["sync", "--help"])
    assert "HAIPER_API_KEY" in capsys.readouterr().out
