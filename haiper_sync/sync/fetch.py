"""The per-chunk work: check statuses, fetch details, with the retry policy applied per request.

One ID's failure becomes an `ErrorRecord`; only a run-stopping error (401) is raised.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Generic, Self, TypeVar

from haiper_sync.api.client import Detail, HaiperClient, Sleep
from haiper_sync.api.models import CreationDetail, StatusResponse
from haiper_sync.api.retry import Action, RetryPolicy, decide
from haiper_sync.errors import ApiError, InvalidResponse, RequestFailed
from haiper_sync.rows import ErrorRecord
from haiper_sync.statuses import KNOWN_STATUSES, SUCCEEDED
from haiper_sync.sync.plan import Chunk

T = TypeVar("T")
Draw = Callable[[], float]
# Told how many more IDs of a chunk need nothing more in this run.
Done = Callable[[int], None]


@dataclass(frozen=True)
class StatusOutcome:
    """The result of checking one ID's status."""

    creation_id: str
    checked_at: datetime
    status: str | None = None
    progress: float | None = None
    error: ErrorRecord | None = None


@dataclass(frozen=True)
class DetailOutcome:
    """The result of fetching one ID's detail."""

    creation_id: str
    fetched_at: datetime
    detail: CreationDetail | None = None
    raw: str | None = None
    error: ErrorRecord | None = None


Outcome = TypeVar("Outcome", StatusOutcome, DetailOutcome)


@dataclass
class _Batch(Generic[Outcome]):
    """Outcomes of one chunk's requests of one kind, with the requests they cost."""

    outcomes: list[Outcome] = field(default_factory=list)
    requests: int = 0
    retries: int = 0

    def plus(self, other: Self) -> Self:
        """This batch and ``other`` as one."""
        return type(self)(
            self.outcomes + other.outcomes,
            self.requests + other.requests,
            self.retries + other.retries,
        )


@dataclass
class StatusBatch(_Batch[StatusOutcome]):
    """Status outcomes of one chunk, with the requests they cost."""

    def succeeded(self) -> list[str]:
        """IDs whose status is ``succeed``: the only ones with a detail to fetch."""
        return [o.creation_id for o in self.outcomes if o.status == SUCCEEDED]


@dataclass
class DetailBatch(_Batch[DetailOutcome]):
    """Detail outcomes of one chunk, with the requests they cost."""


def _now() -> datetime:
    return datetime.now(UTC)


def _record(error: ApiError, creation_id: str, stage: str, deferred: bool) -> ErrorRecord:
    if isinstance(error, InvalidResponse):
        stage = "parse"
    if isinstance(error, RequestFailed):
        return ErrorRecord(
            creation_id=creation_id,
            stage=stage,
            message=str(error),
            http_status=error.status_code,
            code=error.code,
            raw_body=error.body,
            deferred=deferred,
        )
    return ErrorRecord(creation_id, stage, str(error), deferred=deferred)


@dataclass
class _Retrier:
    """Applies the retry policy to single requests and counts what they cost."""

    policy: RetryPolicy
    sleep: Sleep
    draw: Draw
    requests: int = 0
    retries: int = 0

    async def call(
        self, request: Callable[[], Awaitable[T]], creation_id: str, stage: str
    ) -> T | ErrorRecord | None:
        """``request()`` until it succeeds, or the policy says to stop: then an `ErrorRecord`.

        None: the run's request budget was spent before the ID was asked at all.
        """
        attempt = 0
        last: ErrorRecord | None = None
        while True:
            attempt += 1
            self.requests += 1
            try:
                return await request()
            except ApiError as error:
                decision = decide(error, attempt, self.policy, self.draw())
                if decision.action is Action.STOP_RUN:
                    raise
                if decision.action is Action.SKIP:
                    self.requests -= 1  # never sent
                    if last is not None:
                        self.retries -= 1
                    # Asked and failed before: that answer stands, for the next run to retry.
                    return replace(last, deferred=True) if last is not None else None
                if decision.action is Action.RETRY:
                    self.retries += 1
                    last = _record(error, creation_id, stage, deferred=True)
                    await self.sleep(decision.delay)
                    continue
                return _record(error, creation_id, stage, decision.action is Action.DEFER)


async def _ask_each(
    retrier: _Retrier,
    ids: list[str],
    stage: str,
    request: Callable[[str], Awaitable[T]],
    answer: Callable[[str, T | ErrorRecord, datetime], Outcome | None],
) -> list[Outcome]:
    """``request`` every ID (concurrently, bounded by the client's pool) through ``retrier``.

    Each answer, or the ID's `ErrorRecord`, goes to ``answer`` with the time it came; what it
    returns is kept, in ID order. An ID the run's request budget never reached, or whose
    ``answer`` is None, leaves nothing.
    """

    async def one(creation_id: str) -> Outcome | None:
        got = await retrier.call(lambda: request(creation_id), creation_id, stage)
        at = _now()
        return None if got is None else answer(creation_id, got, at)

    outcomes = await asyncio.gather(*(one(i) for i in ids))
    return [o for o in outcomes if o is not None]


def _ignore(ids: int) -> None:
    pass


async def check_statuses(
    client: HaiperClient,
    ids: list[str],
    policy: RetryPolicy,
    *,
    sleep: Sleep = asyncio.sleep,
    draw: Draw = random.random,
    on_done: Done = _ignore,
) -> StatusBatch:
    """Check the status of every ID (concurrently, bounded by the client's pool).

    ``on_done(1)`` for each ID that needs nothing more in this run (all but ``succeed``).
    """
    retrier = _Retrier(policy, sleep, draw)

    def answer(
        creation_id: str, got: StatusResponse | ErrorRecord, checked_at: datetime
    ) -> StatusOutcome:
        outcome = _status_outcome(creation_id, got, checked_at)
        if outcome.status != SUCCEEDED:
            on_done(1)
        return outcome

    asked = await _ask_each(retrier, ids, "status", client.get_status, answer)
    return StatusBatch(asked, retrier.requests, retrier.retries)


def _status_outcome(
    creation_id: str, got: StatusResponse | ErrorRecord, checked_at: datetime
) -> StatusOutcome:
    if isinstance(got, ErrorRecord):
        return StatusOutcome(creation_id, checked_at, error=got)
    value = got.value
    if value is None or value.status not in KNOWN_STATUSES:
        shown = None if value is None else value.status
        message = f"status response has no known value.status (got {shown!r})"
        raw = got.model_dump_json(exclude={"drift"})
        error = ErrorRecord(creation_id, "parse", message, 200, raw_body=raw, deferred=True)
        return StatusOutcome(creation_id, checked_at, error=error)
    return StatusOutcome(creation_id, checked_at, value.status, value.progress)


async def fetch_details(
    client: HaiperClient,
    ids: list[str],
    policy: RetryPolicy,
    *,
    sleep: Sleep = asyncio.sleep,
    draw: Draw = random.random,
    on_done: Done = _ignore,
) -> DetailBatch:
    """Fetch the detail of every ID (call it only for IDs whose status is ``succeed``)."""
    retrier = _Retrier(policy, sleep, draw)

    def answer(creation_id: str, got: Detail | ErrorRecord, fetched_at: datetime) -> DetailOutcome:
        on_done(1)
        return _detail_outcome(creation_id, got, fetched_at)

    asked = await _ask_each(retrier, ids, "detail", client.get_detail, answer)
    return DetailBatch(asked, retrier.requests, retrier.retries)


def _detail_outcome(
    creation_id: str, got: Detail | ErrorRecord, fetched_at: datetime
) -> DetailOutcome:
    if isinstance(got, ErrorRecord):
        return DetailOutcome(creation_id, fetched_at, error=got)
    if got.response.value is None:
        error = ErrorRecord(
            creation_id,
            "parse",
            "detail response has no usable `value` object",
            200,
            raw_body=got.raw,
            deferred=True,
        )
        return DetailOutcome(creation_id, fetched_at, error=error)
    return DetailOutcome(creation_id, fetched_at, got.response.value, got.raw)


async def fetch_details_first(
    client: HaiperClient,
    ids: list[str],
    policy: RetryPolicy,
    *,
    sleep: Sleep = asyncio.sleep,
    draw: Draw = random.random,
    on_done: Done = _ignore,
) -> tuple[StatusBatch, DetailBatch, list[str]]:
    """Ask IDs never seen before for their detail directly (a detail-first backfill).

    A detail whose ``value.status`` is ``succeed`` is stored: one request instead of two. Any
    other status in the body is recorded as that ID's status. The API's 400 for a creation
    that has not finished (and a body with no known status) sends the ID to the status check
    instead: those IDs are returned last. Other errors are the ID's errors, as for any detail.
    """
    retrier = _Retrier(policy, sleep, draw)
    statuses: list[StatusOutcome] = []
    details: list[DetailOutcome] = []
    fall_back: list[str] = []

    def answer(creation_id: str, got: Detail | ErrorRecord, at: datetime) -> None:
        if isinstance(got, ErrorRecord) and got.http_status == 400:
            fall_back.append(creation_id)
            return
        outcome = _detail_outcome(creation_id, got, at)
        status = outcome.detail.status if outcome.detail is not None else None
        if outcome.detail is None or status in KNOWN_STATUSES:
            on_done(1)
        status = outcome.detail.status if outcome.detail is not None else None
        if outcome.detail is None:  # an error or an unusable body: the ID's error
            details.append(outcome)
        elif status == SUCCEEDED:
            statuses.append(StatusOutcome(creation_id, at, SUCCEEDED))
            details.append(outcome)
        elif status in KNOWN_STATUSES:  # not finished, said in a 200
            statuses.append(StatusOutcome(creation_id, at, status))
        else:  # no status we know: the status endpoint says
            fall_back.append(creation_id)

    await _ask_each(retrier, ids, "detail", client.get_detail, answer)
    falling = set(fall_back)
    return (
        StatusBatch(statuses, retrier.requests, retrier.retries),
        DetailBatch(details),
        [i for i in ids if i in falling],  # in manifest order
    )


async def request_chunk(
    client: HaiperClient,
    chunk: Chunk,
    policy: RetryPolicy,
    *,
    sleep: Sleep = asyncio.sleep,
    draw: Draw = random.random,
    on_done: Done = _ignore,
) -> tuple[StatusBatch, DetailBatch]:
    """A chunk's requests: details first for ``chunk.detail_first``, statuses of the rest (and
    of those that fell back), then the details of every ID that succeeded.

    ``on_done(n)`` as IDs need nothing more: a live count for progress while chunks are in
    flight.
    """
    first_statuses, first_details, fall_back = StatusBatch(), DetailBatch(), list[str]()
    if chunk.detail_first:
        first_statuses, first_details, fall_back = await fetch_details_first(
            client, chunk.detail_first, policy, sleep=sleep, draw=draw, on_done=on_done
        )
    to_check = chunk.to_check + fall_back
    statuses = StatusBatch()
    if to_check:
        statuses = await check_statuses(
            client, to_check, policy, sleep=sleep, draw=draw, on_done=on_done
        )
    ids = statuses.succeeded() + chunk.known_succeeded
    details = DetailBatch()
    if ids:
        details = await fetch_details(client, ids, policy, sleep=sleep, draw=draw, on_done=on_done)
    return first_statuses.plus(statuses), first_details.plus(details)
