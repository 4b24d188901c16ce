"""Manifests as teams keep them: CSV, Parquet, JSON with a creation_id column, globs, stdin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from haiper_sync.errors import ManifestError
from haiper_sync.settings import ManifestFormat
from haiper_sync.simulator import generate_ids
from haiper_sync.store import connection, runs
from haiper_sync.sync.manifest import check_manifest
from haiper_sync.sync.plan import plan_run
from tests.support.manifest import Manifest


def plan(db: Path, manifest: str, tmp: Path, fmt: ManifestFormat = "auto") -> Any:
    with connection.open_database(db) as con:
        runs.start_run(con, "r1", manifest=manifest, refresh=False)
        result = plan_run(
            con, manifest, run_id="r1", refresh=False, todo_path=tmp / "todo.parquet",
            chunk_size=1_000, manifest_format=fmt,
        )  # fmt: skip
        errors = con.execute(
            "SELECT creation_id, message FROM sync_errors WHERE stage = 'manifest' ORDER BY ALL"
        ).fetchall()
    todo = [r["creation_id"] for r in pq.read_table(result.todo_path).to_pylist()]
    return result, todo, errors


def test_a_csv_with_a_creation_id_column_among_others(
    tmp_path: Path, db_path: Path, manifest: Manifest
) -> None:
    ids_file = manifest(
        (
            'prompt,creation_id,created\n"a cat, sleeping",abc-1,2026-01-01\n'
            "a dog,../etc,2026-01-02\nno id,,2026-01-03\na fox,abc-2,2026-01-04\n"
        ),
        name="export.csv",
    )
    result, todo, errors = plan(db_path, str(ids_file), tmp_path)
    assert todo == ["abc-1", "abc-2"] and result.ids_rejected == 1
    assert errors == [("../etc", f"rejected manifest entry ({ids_file} line 3): not a creation "
                                 "ID (allowed: A-Z a-z 0-9 - _)")]  # fmt: skip


def test_a_100000_row_parquet_manifest(tmp_path: Path, db_path: Path) -> None:
    ids = generate_ids(100_000, seed=99)
    manifest = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"n": range(len(ids)), "creation_id": ids}), manifest)
    result, todo, errors = plan(db_path, str(manifest), tmp_path)
    assert (result.ids_in_manifest, result.todo, errors) == (100_000, 100_000, [])
    assert todo == ids  # in the file's order


def test_json_and_ndjson_and_a_glob_of_every_format(
    tmp_path: Path, db_path: Path, manifest: Manifest
) -> None:
    folder = tmp_path / "m"
    manifest(json.dumps([{"creation_id": "j-1"}, {"creation_id": "bad id"}]), name="m/a.json")
    manifest('{"creation_id": "n-1", "x": 1}\n{"creation_id": "n-2"}\n', name="m/b.ndjson")
    manifest(["t-1", "j-1"], name="m/c.txt")
    manifest(["creation_id", "c-1"], name="m/d.csv")
    result, todo, errors = plan(db_path, str(folder / "*"), tmp_path)
    assert result.ids_in_manifest == 5
    assert todo == ["j-1", "n-1", "n-2", "t-1", "c-1"]  # files in name order, duplicates once
    assert errors == [("bad id", f"rejected manifest entry ({folder / 'a.json'} row 2): not a "
                                 "creation ID (allowed: A-Z a-z 0-9 - _)")]  # fmt: skip


def test_a_missing_id_column_is_one_line_naming_the_columns(
    tmp_path: Path, manifest: Manifest
) -> None:
    ids_file = manifest("id,prompt\nabc-1,a cat\n", name="export.csv")
    with pytest.raises(ManifestError) as caught:
        check_manifest(str(ids_file))
    assert (
        str(caught.value)
        == f"manifest {ids_file}: no creation_id column (columns found: id, prompt)"
    )


def test_the_format_flag_overrides_the_extension(
    tmp_path: Path, db_path: Path, manifest: Manifest
) -> None:
    ids_file = manifest("creation_id,prompt\nabc-1,a cat\n", name="export.txt")
    _, todo, _ = plan(db_path, str(ids_file), tmp_path, fmt="csv")
    assert todo == ["abc-1"]
