"""docs/schema.md describes exactly the tables, views and columns a fresh file has."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from haiper_sync.store import connection
from tests.support.paths import DOCS

DOC = DOCS / "schema.md"
# The doc uses the short spelling of the migrations; information_schema spells it out.
TYPE_ALIASES = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}


@dataclass
class Relation:
    """One ``## name`` section of the doc."""

    kind: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    meanings: dict[str, str] = field(default_factory=dict)


def parse_doc(text: str) -> dict[str, Relation]:
    """``## name``, a ``**Table.**`` / ``**View.**`` line, then ``| column | type | meaning |``."""
    relations: dict[str, Relation] = {}
    current: Relation | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            name = line[3:].strip()
            assert name not in relations, f"{name} documented twice"
            current = relations[name] = Relation()
        elif current is None:
            continue
        elif kind := re.match(r"\*\*(Table|View)\.\*\*", line):
            current.kind = kind.group(1).lower()
        elif line.startswith("|") and not re.match(r"\|\s*(column\s*\||-)", line):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            assert len(cells) == 3, f"bad row: {line}"
            column, type_, meaning = cells
            assert column not in current.columns, f"{column} twice"
            current.columns[column] = TYPE_ALIASES.get(type_, type_)
            current.meanings[column] = meaning
    return relations


def test_the_doc_matches_a_fresh_database(tmp_path: Path) -> None:
    documented = parse_doc(DOC.read_text())
    with connection.open_database(tmp_path / "fresh.duckdb") as con:
        kinds = dict(
            con.execute(
                "SELECT table_name, CASE table_type WHEN 'VIEW' THEN 'view' ELSE 'table' END "
                "FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall()
        )
        actual: dict[str, dict[str, str]] = {name: {} for name in kinds}
        for table, column, type_ in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
        ).fetchall():
            actual[table][column] = type_

    assert sorted(documented) == sorted(actual), "documented relations differ from the file's"
    for name, relation in documented.items():
        assert relation.kind == kinds[name], f"{name} is a {kinds[name]}"
        assert relation.columns == actual[name], f"columns of {name}"
        assert list(relation.columns) == list(actual[name]), f"column order of {name}"
        empty = [c for c, meaning in relation.meanings.items() if len(meaning) < 5]
        assert not empty, f"{name}: columns without a meaning: {empty}"


def test_the_parser_reads_kind_columns_and_types() -> None:
    doc = (
        "# intro\n\n| not | a | relation |\n\n## t\n\n**View.** x\n\n"
        "| column | type | meaning |\n|---|---|---|\n"
        "| a | TIMESTAMPTZ | when |\n| b | INTEGER | n |\n"
    )
    parsed = parse_doc(doc)
    assert list(parsed) == ["t"]
    assert parsed["t"].kind == "view"
    assert parsed["t"].columns == {"a": "TIMESTAMP WITH TIME ZONE", "b": "INTEGER"}
