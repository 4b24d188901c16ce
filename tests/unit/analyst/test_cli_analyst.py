"""The analyst's commands (query, status, export), run in-process on a small database."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from cli.main import main
from haiper_sync.api.models import CreationDetail
from haiper_sync.rows import ErrorRecord
from haiper_sync.simulator import creation_detail, creation_status, generate_ids
from haiper_sync.store import connection, runs
from haiper_sync.store.writes import write_chunk
from haiper_sync.sync.assemble import assemble_chunk
from haiper_sync.sync.fetch import DetailBatch, DetailOutcome, StatusBatch, StatusOutcome

IDS = generate_ids(40, seed=21)
SUCCEEDED = [i for i in IDS if creation_status(i)["status"] == "succeed"]
UNKNOWN = "nf-analyst-1"
RUN = "run-analyst-1"
BY_STATUS = "SELECT status, count(*) AS ids FROM creation_status GROUP BY ALL ORDER BY ids DESC"


def expected_statuses() -> Counter[str | None]:
    counts: Counter[str | None] = Counter(creation_status(i)["status"] for i in IDS)
    counts[None] += 1  # the unknown ID, never answered
    return counts


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database as one sync of 40 simulated IDs plus one unknown ID leaves it (no Prefect)."""
    path = tmp_path_factory.mktemp("analyst") / "small.duckdb"
    now = datetime.now(UTC)
    gone = ErrorRecord(UNKNOWN, "status", "HTTP 404", http_status=404, code="H-10002003")
    statuses = StatusBatch(
        [StatusOutcome(i, now, **creation_status(i)) for i in IDS]
        + [StatusOutcome(UNKNOWN, now, error=gone)],
        requests=len(IDS) + 1,
    )
    succeeded = statuses.succeeded()
    details = DetailBatch(
        [
            DetailOutcome(
                i,
                now,
                CreationDetail.model_validate(creation_detail(i)),
                json.dumps({"status": 0, "value": creation_detail(i)}),
            )
            for i in succeeded
        ],
        requests=len(succeeded),
    )
    with connection.open_database(path) as con:
        runs.start_run(con, RUN, manifest="ids.txt", refresh=False)
        write_chunk(con, RUN, assemble_chunk(RUN, statuses, details))
        runs.finish_run(con, RUN, state="completed")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown"])
def test_query_prints_each_format(db: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    code, out, err = run(capsys, "query", BY_STATUS, "--db", str(db), "--format", fmt)
    assert (code, err) == (0, "")
    want = {(s or "", n) for s, n in expected_statuses().items()}
    if fmt == "table":
        lines = out.splitlines()
        assert lines[0].split() == ["status", "ids"] and set(lines[1]) <= {"-", " "}
        got = {(line[: lines[1].index(" ")].strip(), int(line.split()[-1])) for line in lines[2:]}
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(out)))
        assert rows[0] == ["status", "ids"]
        got = {(s, int(n)) for s, n in rows[1:]}
    elif fmt == "json":
        got = {(r["status"] or "", r["ids"]) for r in json.loads(out)}
    else:
        lines = out.splitlines()
        assert lines[:2] == ["| status | ids |", "|---|---|"]
        got = {(c[1].strip(), int(c[2])) for c in (line.split("|") for line in lines[2:])}
    assert got == want


def test_query_reads_the_database_named_by_haiper_db(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAIPER_DB", str(db))
    code, out, _ = run(capsys, "query", "SELECT count(*) AS n FROM creations", "--format", "csv")
    assert code == 0
    assert out.splitlines() == ["n", str(expected_statuses()["succeed"])]


@pytest.mark.parametrize(
    "argv", [["query", "SELECT 1"], ["status"], ["export", "--format", "csv", "--out", "x"]]
)
def test_a_missing_database_is_explained_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    missing = tmp_path / "nothing.duckdb"
    code, out, err = run(capsys, *argv, "--db", str(missing))
    assert code == 1 and out == ""
    assert err == (
        f"haiper-sync: no database at {missing}; run `haiper-sync sync` or `make demo` first\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_sql_error_is_one_line(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "query", "SELECT * FROM creatoins", "--db", str(db))
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("haiper-sync: Catalog Error: Table with name creatoins does not exist")
    assert "LINE 1" not in err


def test_a_statement_that_writes_is_refused_clearly(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "query", "DELETE FROM creations", "--db", str(db))
    assert code == 1
    assert "opens the database read-only and cannot change it" in err
    assert 'statement of type "DELETE"' in err
    code, out, _ = run(capsys, "query", "SELECT count(*) AS n FROM creations", "--db", str(db))
    assert out.split()[-1] == str(expected_statuses()["succeed"])


def test_a_database_held_by_another_process_gives_the_lock_message(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    held = tmp_path / "held.duckdb"
    shutil.copy(db, held)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            "con = duckdb.connect(sys.argv[1])\n"
            "print('ready', flush=True)\n"
            "time.sleep(30)\n",
            str(held),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        code, out, err = run(capsys, "query", "SELECT 1", "--db", str(held), "--wait", "0.3")
    finally:
        holder.kill()
        holder.wait()
    assert code == 1 and out == ""
    assert err.startswith(f"haiper-sync: {held} is locked by ")
    assert f"(PID {holder.pid})" in err and "gave up after 0.3 s" in err


def test_status_reports_counts_last_run_and_oldest_pending(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "status", "--db", str(db))
    assert (code, err) == (0, "")
    counts = expected_statuses()
    lines = out.splitlines()
    for status, n in counts.items():
        label = status or "(no status yet)"
        assert any(line.split() == [*label.split(), str(n)] for line in lines), label
    n_outputs = sum(len(creation_detail(i)["outputs"]) for i in SUCCEEDED)
    assert f"creations  {counts['succeed']} with details, {n_outputs} outputs" in out
    assert f"IDs        {len(IDS) + 1} known" in out
    assert f"run {RUN} completed" in out
    pending = sum(n for s, n in counts.items() if s not in ("succeed", "failed"))
    assert f"pending    {pending} IDs without a final status" in out
    assert "  oldest   " in out and "ago, checked" in out


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_writes_every_table_and_view_with_its_rows(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    out_dir = tmp_path / "new" / "dir"
    code, out, err = run(capsys, "export", "--format", fmt, "--out", str(out_dir), "--db", str(db))
    assert (code, err) == (0, "")
    con = duckdb.connect(str(db), read_only=True)
    try:
        relations = [
            name
            for (name,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall()
        ]
        rows = {r: con.execute(f"SELECT count(*) FROM {r}").fetchall()[0][0] for r in relations}
    finally:
        con.close()
    assert len(relations) == 16  # 9 tables, 7 views (docs/schema.md)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(f"{r}.{fmt}" for r in relations)
    reader = duckdb.connect()
    for relation, n in rows.items():
        path = out_dir / f"{relation}.{fmt}"
        read = f"read_{fmt}('{path}')"
        assert reader.execute(f"SELECT count(*) FROM {read}").fetchall() == [(n,)], relation
        assert any(line.split()[:2] == [str(path), str(n)] for line in out.splitlines()[1:]), (
            relation
        )
    reader.close()
    assert out.splitlines()[0] == f"wrote {len(relations)} {fmt} files to {out_dir}"
