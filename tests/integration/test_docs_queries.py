"""Every query in docs/queries.md runs on a synced database and still has the documented columns."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from haiper_sync.analyst import queries
from haiper_sync.simulator import SimulatorConfig, SimulatorServer, generate_ids
from tests.support.manifest import write_manifest
from tests.support.paths import DOCS

pytestmark = pytest.mark.integration

DOC = DOCS / "queries.md"
KEY = "sim-docs-key"
# The same IDs as `haiper-sync demo`, so the documented outputs describe this data.
PLANTED = ["nf-demo-unknown-1", "nf-demo-unknown-2", "../not/an/id"]

_BLOCK = re.compile(
    r"^(?P<heading>#{2,3} [^\n]+)\n\n(?P<purpose>(?:(?!```|#)[^\n]+\n)+)\n"
    r"```sql\n(?P<sql>.*?)\n```\n\n```text\n(?P<output>.*?)\n```",
    re.S | re.M,
)


@dataclass(frozen=True)
class DocQuery:
    """One documented query: heading, SQL, and the output shown under it."""

    heading: str
    purpose: str
    sql: str
    output: str


def parse_queries(text: str) -> list[DocQuery]:
    """Each heading followed by a purpose, a ```sql block and its ```text output."""
    return [
        DocQuery(m["heading"].lstrip("# "), m["purpose"].strip(), m["sql"], m["output"])
        for m in _BLOCK.finditer(text)
    ]


@pytest.fixture(scope="module")
def synced_db(prefect_server: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The demo's manifest synced by the real flow from the simulator."""
    from flows import sync_creations

    folder = tmp_path_factory.mktemp("docs-queries")
    manifest = write_manifest(folder, generate_ids(200) + PLANTED, name="manifest.txt")
    db = folder / "demo.duckdb"
    with (
        pytest.MonkeyPatch.context() as env,
        SimulatorServer(SimulatorConfig(api_keys=frozenset({KEY}))) as sim,
    ):
        env.setenv("HAIPER_API_KEY", KEY)
        summary = sync_creations(
            manifest=str(manifest),
            db_path=str(db),
            api_url=sim.url,
            chunk_size=50,
            rate_limit=100_000,
        )
    assert summary.state == "completed"
    yield db


def test_the_doc_has_at_least_ten_complete_queries() -> None:
    text = DOC.read_text()
    queries = parse_queries(text)
    assert len(queries) >= 10
    # A ```sql block the pattern missed would go untested: every one must parse.
    assert text.count("```sql\n") == len(queries)
    for query in queries:
        assert query.purpose.rstrip().endswith("."), query.heading
        assert query.output.strip(), f"no output under {query.heading!r}"


def test_every_documented_query_runs_with_the_documented_columns(synced_db: Path) -> None:
    documented = parse_queries(DOC.read_text())
    with queries.open_readonly(synced_db) as con:
        for query in documented:
            result = queries.run_query(con, query.sql)
            assert result.columns, query.heading
            assert all(" " not in c for c in result.columns), query.heading
            header = query.output.splitlines()[0].split()
            assert header == result.columns, f"regenerate the output of {query.heading!r}"


def test_the_parser_pairs_each_query_with_its_output() -> None:
    text = "## A\n\nDoes a.\n\n```sql\nSELECT 1 AS x\n```\n\n```text\nx\n-\n1\n```\n"
    assert parse_queries(text) == [DocQuery("A", "Does a.", "SELECT 1 AS x", "x\n-\n1")]
