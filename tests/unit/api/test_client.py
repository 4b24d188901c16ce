"""The client against ``httpx.MockTransport``: requests built right, answers typed right."""

import asyncio
import json
import pickle
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from haiper_sync.api.client import HaiperClient
from haiper_sync.api.ids import InvalidCreationId
from haiper_sync.api.ratelimit import RateLimiter
from haiper_sync.api.retry import RetryPolicy
from haiper_sync.errors import (
    InvalidResponse,
    RateLimited,
    RequestFailed,
    TransportFailed,
    Unauthorized,
)
from haiper_sync.sync.fetch import check_statuses, fetch_details

TOKEN = "tok-SENTINEL-123"
Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)


def client_for(handler: Handler, **kw: Any) -> HaiperClient:
    return HaiperClient(
        "https://api.example", SecretStr(TOKEN), transport=httpx.MockTransport(handler), **kw
    )


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_status_request_carries_bearer_and_parses() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"status": "success", "value": {"status": "processing", "progress": 0.4}}
        )

    async def go() -> object:
        async with client_for(handler) as client:
            return await client.get_status("abc-1")

    parsed = run(go())
    assert parsed.value.status == "processing" and parsed.value.progress == 0.4  # type: ignore[attr-defined]
    assert seen[0].url == "https://api.example/v1/jobs/abc-1/status"
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_detail_keeps_raw_text() -> None:
    body = {"status": "success", "value": {"creation_id": "abc", "prompt": "p"}}

    async def go() -> object:
        async with client_for(lambda r: httpx.Response(200, json=body)) as client:
            return await client.get_detail("abc")

    detail = run(go())
    assert json.loads(detail.raw) == body  # type: ignore[attr-defined]
    assert detail.response.value.prompt == "p"  # type: ignore[attr-defined]


def _raises(handler: Handler, creation_id: str = "abc") -> BaseException:
    async def go() -> None:
        async with client_for(handler) as client:
            await client.get_status(creation_id)

    with pytest.raises(Exception) as info:
        run(go())
    return info.value


def test_error_statuses_map_to_typed_errors() -> None:
    e401 = _raises(lambda r: httpx.Response(401, json={"code": 401, "message": "bad key"}))
    assert isinstance(e401, Unauthorized) and e401.status_code == 401

    e429 = _raises(lambda r: httpx.Response(429, headers={"Retry-After": "3"}, json={}))
    assert isinstance(e429, RateLimited) and e429.retry_after == 3.0

    e404 = _raises(
        lambda r: httpx.Response(404, json={"code": "H-10002003", "message": "no such creation"})
    )
    assert type(e404) is RequestFailed
    assert (e404.status_code, e404.code) == (404, "H-10002003")
    assert "no such creation" in str(e404) and e404.method == "GET"
    assert e404.url == "https://api.example/v1/jobs/abc/status"


def test_garbled_200_is_invalid_response_with_body_kept() -> None:
    error = _raises(lambda r: httpx.Response(200, text='{"status": "succ'))
    assert isinstance(error, InvalidResponse) and error.body == '{"status": "succ'


def test_redirects_are_not_followed() -> None:
    error = _raises(lambda r: httpx.Response(302, headers={"Location": "https://evil.example/"}))
    assert isinstance(error, RequestFailed) and error.status_code == 302


def test_transport_errors_never_carry_the_token() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    error = _raises(boom)
    assert isinstance(error, TransportFailed)
    # Not chained at all: the httpx exception (holding the request and its headers) is gone.
    assert error.__cause__ is None and error.__context__ is None
    assert "refused" in str(error)
    assert TOKEN.encode() not in pickle.dumps(error)
    assert TOKEN not in repr(error.__dict__)


def test_hostile_id_never_reaches_the_transport() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={})

    error = _raises(handler, "../../v1/admin")
    assert isinstance(error, InvalidCreationId)
    assert calls == []


def test_deadline_bounds_a_request() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={})

    from haiper_sync.api.client import Timeouts

    async def go() -> None:
        client = HaiperClient(
            "https://api.example",
            SecretStr(TOKEN),
            transport=httpx.MockTransport(slow),
            timeouts=Timeouts(deadline=0.05),
        )
        async with client:
            await client.get_status("abc")

    with pytest.raises(TransportFailed, match="timed out"):
        run(go())


def test_limiter_wait_goes_through_the_injected_sleep() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    clock_now = [0.0]
    limiter = RateLimiter(2, window=60.0, margin=0.0, clock=lambda: clock_now[0])
    ok = {"status": "success", "value": {"status": "pending"}}

    async def go() -> None:
        client = client_for(
            lambda r: httpx.Response(200, json=ok), limiter=limiter, sleep=fake_sleep
        )
        async with client:
            for _ in range(3):
                await client.get_status("abc")

    run(go())
    assert slept == [60.0]


def test_check_statuses_retries_transient_and_records_permanent_errors() -> None:
    attempts: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        creation_id = request.url.path.split("/")[3]
        attempts[creation_id] = attempts.get(creation_id, 0) + 1
        if creation_id == "flaky" and attempts[creation_id] < 3:
            return httpx.Response(503, json={"code": 503, "message": "busy"})
        if creation_id == "gone":
            return httpx.Response(404, json={"code": "H-10002003", "message": "not found"})
        if creation_id == "down":
            return httpx.Response(500, json={"message": "boom"})
        return httpx.Response(200, json={"status": "success", "value": {"status": "succeed"}})

    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async def go() -> object:
        async with client_for(handler) as client:
            return await check_statuses(
                client,
                ["flaky", "gone", "down", "fine"],
                RetryPolicy(max_attempts=4, base_delay=1.0, jitter=0.0),
                sleep=fake_sleep,
                draw=lambda: 0.0,
            )

    batch = run(go())
    by_id = {o.creation_id: o for o in batch.outcomes}  # type: ignore[attr-defined]
    assert by_id["flaky"].status == "succeed" and by_id["flaky"].error is None
    assert by_id["fine"].status == "succeed"
    assert by_id["gone"].error.http_status == 404 and not by_id["gone"].error.deferred
    assert by_id["down"].error.deferred and by_id["down"].status is None
    assert attempts == {"flaky": 3, "gone": 1, "down": 4, "fine": 1}
    assert batch.requests == 9 and batch.retries == 5  # type: ignore[attr-defined]
    assert sorted(slept) == [1.0, 1.0, 2.0, 2.0, 4.0]


def test_unauthorized_stops_the_batch() -> None:
    async def go() -> None:
        client = client_for(lambda r: httpx.Response(401, json={"message": "no"}))
        async with client:
            await check_statuses(client, ["a", "b"], RetryPolicy())

    with pytest.raises(Unauthorized):
        run(go())


def test_fetch_details_quarantines_bodies_without_value() -> None:
    async def go() -> object:
        client = client_for(lambda r: httpx.Response(200, json={"status": "success"}))
        async with client:
            return await fetch_details(client, ["a"], RetryPolicy())

    batch = run(go())
    error = batch.outcomes[0].error  # type: ignore[attr-defined]
    assert error.stage == "parse" and error.raw_body == '{"status":"success"}'


def test_after_the_first_contact_requests_go_in_parallel() -> None:
    # The first request goes alone (a certificate that never verifies costs one request);
    # those that queued behind it must not then go one at a time.
    in_flight, most = [0], [0]

    async def handler(request: httpx.Request) -> httpx.Response:
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        for _ in range(5):
            await asyncio.sleep(0)  # yields to the loop: no time passes
        in_flight[0] -= 1
        return httpx.Response(200, json={"status": "success", "value": {"status": "pending"}})

    async def go() -> None:
        async with client_for(handler, concurrency=8) as client:
            await asyncio.gather(*(client.get_status(f"id{n}") for n in range(8)))

    run(go())
    assert most[0] > 1
