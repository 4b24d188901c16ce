"""Sanity checks for ``tests.support.canned``."""

from __future__ import annotations

import gzip

import httpx

from tests.support.canned import CannedServer
from tests.support.wire import Reply, SeenRequest


def test_canned_server_gzip_and_keep_alive() -> None:
    payload = b'{"items": []}' * 50

    def handler(request: SeenRequest) -> Reply:
        return Reply(
            headers=[("Content-Encoding", "gzip"), ("Content-Type", "application/json")],
            body=gzip.compress(payload),
            chunked=request.path == "/chunked",
        )

    with CannedServer(handler) as server, httpx.Client(trust_env=False) as client:
        assert server.url == f"http://127.0.0.1:{server.port}"
        for path in ("/a", "/chunked", "/c"):
            response = client.get(server.url + path)
            assert response.status_code == 200
            assert response.content == payload
        seen = server.requests
    assert [r.path for r in seen] == ["/a", "/chunked", "/c"]
    assert {r.conn for r in seen} == {1}  # one connection reused for all three
    assert server.connection_count == 1
    assert seen[0].header("ACCEPT-ENCODING") is not None
