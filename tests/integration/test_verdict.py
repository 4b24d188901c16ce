"""A run's common answer (sync/verdict.py) from local servers: a TLS port spoken to in
plain HTTP, a server refusing only some IDs."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
    run_common_answer,
)
from tests.support.canned import CannedServer
from tests.support.nginx import NginxLikeTlsPort
from tests.support.tls import private_ca
from tests.support.wire import Reply, SeenRequest


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
