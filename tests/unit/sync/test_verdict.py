"""A run whose every request got the same refusal says that refusal (sync/verdict.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from haiper_sync.api.client import HaiperClient
from haiper_sync.api.network import Network
from haiper_sync.api.retry import RetryPolicy
from haiper_sync.store.connection import open_database
from haiper_sync.store.runs import start_run
from haiper_sync.store.writes import write_chunk
from haiper_sync.sync.assemble import assemble_chunk
from haiper_sync.sync.fetch import StatusBatch, check_statuses
from haiper_sync.sync.verdict import (
    MAX_LINE,
    CommonAnswer,
    ErrorAnswer,
    common_answer,
    first_line,
    run_common_answer,
)
from tests.support.canned import CannedServer
from tests.support.nginx import NginxLikeTlsPort
from tests.support.tls import private_ca
from tests.support.wire import Reply, SeenRequest

NGINX_400 = (
    "<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n"
    "<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n</body>\r\n</html>\r\n"
)


def answer(
    status: int | None = 400,
    body: str | None = NGINX_400,
    count: int = 10,
    *,
    deferred: bool = False,
    message: str = "GET http://api/v1/jobs/x/status -> HTTP 400: Bad Request",
) -> ErrorAnswer:
    return ErrorAnswer(status, body, message, deferred, count)


def test_one_answer_for_every_error_is_the_verdict() -> None:
    verdict = common_answer([answer(count=12), answer(count=8)], errors=20)
    assert verdict == CommonAnswer(400, "400 The plain HTTP request was sent to HTTPS port", 20)
    assert str(verdict) == (
        "every request was answered HTTP 400: 400 The plain HTTP request was sent to HTTPS port"
    )


def test_bodies_that_differ_after_their_first_line_are_one_answer() -> None:
    groups = [answer(body=f"Forbidden by policy\nrequest id {n}", count=1) for n in range(5)]
    assert common_answer(groups) == CommonAnswer(400, "Forbidden by policy", 5)


@pytest.mark.parametrize(
    ("groups", "kw"),
    [
        ([], {}),
        ([answer()], {"answered": 1}),  # some ID got an answer: not every answer is this one
        ([answer(), answer(status=404, body='{"code": "NOT_FOUND"}')], {}),
        ([answer(), answer(body="another page")], {}),
        ([answer(status=503, deferred=True)], {}),  # retried: the next run may do better
        ([answer(status=None, body=None, message="GET x failed: connection refused")], {}),
        ([answer(count=10)], {"errors": 11}),  # the query's limit cut a group off
    ],
)
def test_no_verdict_unless_every_error_shares_one_final_answer(
    groups: list[ErrorAnswer], kw: dict[str, int]
) -> None:
    assert common_answer(groups, **kw) is None


def test_first_line_of_a_body() -> None:
    assert first_line('{"message": "no"}\n', "m") == '{"message": "no"}'
    assert first_line("\n\n  <p>Gone &amp; done</p>  \n", "m") == "Gone & done"
    assert first_line(None, "GET http://api/x -> HTTP 403: Forbidden") == "Forbidden"
    long = first_line("x" * 500, "m")
    assert len(long) == MAX_LINE and long.endswith("…")


def test_http_to_a_tls_port_reaches_the_verdict(tmp_path: Path) -> None:
    ca = private_ca(tmp_path)

    def status(request: SeenRequest) -> Reply:
        return Reply(body=b'{"status": "success", "value": {"status": "pending"}}')

    ids = [f"id-{n:02d}" for n in range(20)]

    async def check(url: str) -> StatusBatch:
        async with HaiperClient(url, SecretStr("tok-verdict")) as client:
            return await check_statuses(client, ids, RetryPolicy(base_delay=0.0))

    with (
        CannedServer(status, ssl_context=ca.server_context("127.0.0.1")) as tls,
        NginxLikeTlsPort(tls) as port,
    ):
        batch = asyncio.run(check(f"http://127.0.0.1:{port.port}"))
        assert len(port.plain_requests) == 20 and tls.requests == []

        async def over_tls() -> str | None:
            network = Network(ca_bundle=str(ca.ca_pem))
            async with HaiperClient(port.url, SecretStr("t"), network=network) as client:
                return (await client.get_status("id-00")).value.status  # type: ignore[union-attr]

        # The same port speaks TLS to a TLS client.
        assert asyncio.run(over_tls()) == "pending" and len(tls.requests) == 1
    assert all(o.error is not None and o.error.http_status == 400 for o in batch.outcomes)

    db = tmp_path / "verdict.duckdb"
    with open_database(db) as con:
        start_run(con, "run-1", manifest="ids.txt", refresh=False)
        write_chunk(con, "run-1", assemble_chunk("run-1", batch, None))
        verdict = run_common_answer(con, "run-1")
        assert run_common_answer(con, "no-such-run") is None
    assert verdict is not None and verdict.count == 20
    assert str(verdict) == (
        "every request was answered HTTP 400: 400 The plain HTTP request was sent to HTTPS port"
    )


def test_a_run_with_some_answers_has_no_verdict(tmp_path: Path) -> None:
    def half(request: SeenRequest) -> Reply:
        if "bad" in request.target:
            return Reply(status=400, body=b"refused\n")
        return Reply(body=b'{"status": "success", "value": {"status": "pending"}}')

    async def check(url: str) -> StatusBatch:
        async with HaiperClient(url, SecretStr("tok-verdict")) as client:
            return await check_statuses(client, ["bad-1", "ok-1"], RetryPolicy(base_delay=0.0))

    with CannedServer(half) as api:
        batch = asyncio.run(check(api.url))
    with open_database(tmp_path / "half.duckdb") as con:
        start_run(con, "run-2", manifest="ids.txt", refresh=False)
        write_chunk(con, "run-2", assemble_chunk("run-2", batch, None))
        assert run_common_answer(con, "run-2") is None
        # The same errors, with no ID answered, would have one.
        con.execute("UPDATE creation_status SET last_error = 'x'")
        assert (
            str(run_common_answer(con, "run-2")) == "every request was answered HTTP 400: refused"
        )
