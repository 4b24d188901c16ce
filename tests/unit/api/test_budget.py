"""A run's request budget: never exceeded, and a budgeted run resumes to the same result."""

from __future__ import annotations

import asyncio
from pathlib import Path

import duckdb
import httpx
import pytest
from pydantic import SecretStr

from flows import sync_creations
from haiper_sync.api.budget import RequestBudget
from haiper_sync.api.client import HaiperClient
from haiper_sync.api.retry import Action, RetryPolicy, decide
from haiper_sync.errors import BudgetSpent
from haiper_sync.simulator import SimulatorServer, generate_ids
from haiper_sync.sync.fetch import check_statuses

STATUS = {"status": "success", "value": {"status": "processing", "progress": 0.5}}


def test_the_budget_is_taken_atomically_and_then_refuses() -> None:
    budget = RequestBudget(2)
    assert [budget.take() for _ in range(4)] == [True, True, False, False]
    assert budget.spent == 2 and budget.exhausted
    unlimited = RequestBudget(None)
    assert all(unlimited.take() for _ in range(1000)) and not unlimited.exhausted
    assert decide(BudgetSpent("spent"), 1, RetryPolicy(), 0.5).action is Action.SKIP


def _batch(handler: object, ids: list[str], budget: RequestBudget) -> object:
    async def go() -> object:
        transport = httpx.MockTransport(handler)  # type: ignore[arg-type]
        async with HaiperClient(
            "https://api.example", SecretStr("k"), transport=transport, budget=budget
        ) as client:
            return await check_statuses(client, ids, RetryPolicy(base_delay=0.0))

    return asyncio.run(go())


def test_ids_past_the_budget_are_not_asked_and_not_recorded() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(200, json=STATUS)

    batch = _batch(handler, [f"id-{n}" for n in range(5)], RequestBudget(3))
    assert len(sent) == 3
    assert len(batch.outcomes) == 3 and batch.requests == 3  # type: ignore[attr-defined]
    assert all(o.status == "processing" for o in batch.outcomes)  # type: ignore[attr-defined]


def test_a_retry_past_the_budget_keeps_the_first_answer_for_the_next_run() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(503, json={"code": "busy", "message": "try later"})

    batch = _batch(handler, ["id-1"], RequestBudget(1))
    (outcome,) = batch.outcomes  # type: ignore[attr-defined]
    assert len(sent) == 1 and batch.requests == 1 and batch.retries == 0  # type: ignore[attr-defined]
    assert outcome.error is not None and outcome.error.deferred
    assert outcome.error.http_status == 503


# When, by which run, and how often it was asked (and so when it is asked next).
VOLATILE = {"first_synced_at", "last_synced_at", "last_run_id", "first_seen_at",
            "last_checked_at", "occurred_at", "run_id", "checks", "unchanged_checks",
            "next_check_at"}  # fmt: skip


def snapshot(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every data table, minus when and by which run (and how often checked)."""
    out = {}
    with duckdb.connect(str(db), read_only=True) as con:
        for table in ("creations", "creation_outputs", "creation_status"):
            names = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            keep = ", ".join(n for n in names if n not in VOLATILE)
            out[table] = sorted(con.execute(f"SELECT {keep} FROM {table}").fetchall(), key=repr)
    return out


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_server", "api_key_env")
def test_a_budgeted_run_spends_exactly_its_budget_and_the_next_run_finishes_the_job(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    manifest = tmp_path / "ids.txt"
    manifest.write_text("\n".join(generate_ids(120, seed=81)) + "\n")
    common = dict(manifest=str(manifest), api_url=sim.url, rate_limit=100_000, chunk_size=30)

    full = sync_creations(db_path=str(tmp_path / "full.duckdb"), **common)
    unbudgeted = sim.stats.snapshot()["total"]
    sim.stats.reset()

    budgeted = tmp_path / "budgeted.duckdb"
    first = sync_creations(db_path=str(budgeted), max_requests=70, **common)
    assert sim.stats.snapshot()["total"] == first.requests == 70 < unbudgeted
    assert first.state == "completed"
    assert first.message is not None and first.message.startswith("request budget of 70 spent:")
    second = sync_creations(db_path=str(budgeted), **common)
    assert second.state == "completed" and second.message is None
    assert snapshot(budgeted) == snapshot(tmp_path / "full.duckdb")
    assert full.ids_fetched == first.ids_fetched + second.ids_fetched
