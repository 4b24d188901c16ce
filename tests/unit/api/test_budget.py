"""A run's request budget: taken atomically, never exceeded (a budgeted run: tests/integration/)."""

from __future__ import annotations

import asyncio

import httpx
from pydantic import SecretStr

from haiper_sync.api.budget import RequestBudget
from haiper_sync.api.client import HaiperClient
from haiper_sync.api.retry import Action, RetryPolicy, decide
from haiper_sync.errors import BudgetSpent
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
