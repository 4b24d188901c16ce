"""Sanity checks for ``tests.support.tls``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.canned import CannedServer, echo_path
from tests.support.tls import private_ca


def test_expired_certificate_is_refused(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    ca = private_ca(tmp_path)
    with CannedServer(
        echo_path, ssl_context=ca.server_context("127.0.0.1", expired=True)
    ) as server:
        with (
            httpx.Client(verify=ca.client_context(), trust_env=False) as client,
            pytest.raises(httpx.ConnectError, match="expired"),
        ):
            client.get(server.url + "/")
        # The refused handshake must leave the server serving.
        with httpx.Client(verify=False, trust_env=False) as client:
            assert client.get(server.url + "/ok").text == "hello /ok"
    assert "Traceback" not in capfd.readouterr().err
