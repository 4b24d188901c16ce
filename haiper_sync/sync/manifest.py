"""Manifests: the files a manifest names, their formats, and their entries staged to Parquet.

A manifest is lines of creation IDs, or CSV, Parquet or JSON files with a ``creation_id``
column. The entries stream into a Parquet file in batches, so memory follows the batch size,
not the manifest size.
"""

from __future__ import annotations

import glob
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from haiper_sync.api.ids import MAX_ID_LENGTH
from haiper_sync.errors import ManifestError
from haiper_sync.settings import ManifestFormat
from haiper_sync.store.sql import duckdb_message, sql_literal

# Entries staged per Parquet batch: bounds the reader's memory, whatever the manifest's size.
_BATCH = 20_000
_LINES = pa.schema(
    [("line_no", pa.int64()), ("raw", pa.string()), ("file_no", pa.int32()), ("seq", pa.int64())]
)

# The column structured manifests must have; other columns are ignored.
ID_COLUMN = "creation_id"
_BY_SUFFIX: dict[str, ManifestFormat] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".json": "json",
    ".ndjson": "json",
    ".jsonl": "json",
}
# How an entry's place is named in a rejected entry's message.
_PLACE = {"lines": "line", "csv": "line", "parquet": "row", "json": "row"}


def format_of(path: Path, forced: ManifestFormat = "auto") -> ManifestFormat:
    """The format of one manifest file: ``forced``, else by extension, else lines of IDs."""
    if forced != "auto":
        return forced
    return _BY_SUFFIX.get(path.suffix.lower(), "lines")


def entry_places(files: list[Path], forced: ManifestFormat = "auto") -> list[str]:
    """How each file's entries are placed in a message: ``<file> line`` or ``<file> row``."""
    return [f"{path} {_PLACE[format_of(path, forced)]}" for path in files]


def _where(manifest: str) -> str:
    # A relative path is looked up from the working directory, which on a worker is rarely
    # where the user thinks: say which one.
    if Path(manifest).is_absolute():
        return ""
    return f" (looked in {Path.cwd() / Path(manifest).parent})".replace("/.)", ")")


def manifest_files(manifest: str, forced: ManifestFormat = "auto") -> list[Path]:
    """The files a manifest path or glob names; raise `ManifestError` when there are none."""
    if glob.has_magic(manifest):
        files = sorted(Path(p) for p in glob.glob(manifest, recursive=True))
        if not files:
            raise ManifestError(
                f"manifest {manifest!r}: no file matches this pattern{_where(manifest)}"
            )
    else:
        files = [Path(manifest)]
    for path in files:
        if not path.exists():
            raise ManifestError(f"manifest {path}: no such file{_where(str(path))}")
        if path.is_dir():
            raise ManifestError(f"manifest {path}: is a directory, not a file")
        try:
            with path.open("rb") as handle:
                head = handle.read(8192)
        except OSError as exc:
            raise ManifestError(f"manifest {path}: cannot be read ({exc.strerror})") from None
        if b"\x00" in head and format_of(path, forced) != "parquet":
            raise ManifestError(f"manifest {path}: binary file, expected one creation ID per line")
    return files


def check_manifest(manifest: str, forced: ManifestFormat = "auto") -> list[Path]:
    """`manifest_files`, plus: each CSV, Parquet or JSON file has a ``creation_id`` column."""
    files = manifest_files(manifest, forced)
    con = duckdb.connect()
    try:
        for path in files:
            if (fmt := format_of(path, forced)) != "lines":
                _structured_ids(con, path, fmt)
    finally:
        con.close()
    return files


def _structured_ids(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: ManifestFormat
) -> duckdb.DuckDBPyRelation:
    """The ``creation_id`` column of a CSV, Parquet or JSON manifest with each row's place."""
    source = sql_literal(path)
    reader = {
        "csv": f"read_csv({source}, header = true, all_varchar = true)",
        "parquet": f"read_parquet({source})",
        "json": f"read_json_auto({source})",
    }[fmt]
    try:
        columns = [str(c[0]) for c in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
    except duckdb.Error as error:
        first = duckdb_message(error)
        raise ManifestError(f"manifest {path}: cannot be read as {fmt} ({first})") from None
    match = [c for c in columns if c.lower() == ID_COLUMN]
    if not match:
        raise ManifestError(
            f"manifest {path}: no {ID_COLUMN} column (columns found: {', '.join(columns)})"
        )
    # A CSV's first row is its line 2 (the header is line 1); other formats count rows from 1.
    offset = 1 if fmt == "csv" else 0
    return con.sql(
        f"""
        SELECT row_number() OVER () + {offset} AS line_no,
               trim(CAST("{match[0]}" AS VARCHAR)) AS raw
        FROM {reader}
        """
    ).filter("raw IS NOT NULL AND raw <> ''")


def stage_lines(
    con: duckdb.DuckDBPyConnection,
    files: list[Path],
    staged: Path,
    forced: ManifestFormat = "auto",
) -> int:
    """Stream the manifest's entries (with file, line or row number, order) into a Parquet file.

    DuckDB then reads that file with out-of-core operators, so a manifest of millions of
    lines never has to sit in memory (a temp table would).
    """
    written = 0
    lines: list[str] = []
    numbers: list[int] = []
    sources: list[int] = []

    def flush(writer: pq.ParquetWriter) -> None:
        nonlocal written
        seqs = range(written + 1, written + len(lines) + 1)
        writer.write_batch(
            pa.record_batch(
                [
                    pa.array(numbers, pa.int64()),
                    pa.array(lines, pa.string()),
                    pa.array(sources, pa.int32()),
                    pa.array(seqs, pa.int64()),
                ],
                schema=_LINES,
            )
        )
        written += len(lines)
        lines.clear()
        numbers.clear()
        sources.clear()

    with pq.ParquetWriter(staged, _LINES) as writer:
        for file_no, path in enumerate(files):
            fmt = format_of(path, forced)
            if fmt != "lines":
                reader = _structured_ids(con, path, fmt).fetch_record_batch(_BATCH)
                for batch in reader:
                    lines.extend(v[: MAX_ID_LENGTH + 1] for v in batch.column("raw").to_pylist())
                    numbers.extend(batch.column("line_no").to_pylist())
                    sources.extend([file_no] * batch.num_rows)
                    flush(writer)
                continue
            try:
                with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
                    for line_no, line in enumerate(handle, start=1):
                        text = line.rstrip("\r\n").strip(" \t")
                        if not text or text.startswith("#"):
                            continue
                        if line_no == 1 and text.lower() == "creation_id":
                            continue  # a CSV-style header
                        lines.append(text[: MAX_ID_LENGTH + 1])
                        numbers.append(line_no)
                        sources.append(file_no)
                        if len(lines) >= _BATCH:
                            flush(writer)
            except OSError as exc:
                raise ManifestError(f"manifest {path}: cannot be read ({exc.strerror})") from None
        if lines:
            flush(writer)
    return written
