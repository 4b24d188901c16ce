"""The Haiper API client: one request per call, typed errors, pydantic models out."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from types import TracebackType
from typing import Any

import httpx
from pydantic import SecretStr

from haiper_sync.errors import (
    InvalidResponse,
    RateLimited,
    RequestFailed,
    TransportFailed,
    Unauthorized,
)
from haiper_sync.ids import id_path_segment
from haiper_sync.models import DetailResponse, ErrorBody, StatusResponse
from haiper_sync.ratelimit import RateLimiter
from haiper_sync.retry import parse_retry_after

# Enough of a body to diagnose it in sync_errors without storing megabytes of HTML.
MAX_KEPT_BODY = 4_000
USER_AGENT = "haiper-sync/0.1"


@dataclass(frozen=True)
class Timeouts:
    """Per-phase httpx timeouts plus a whole-request deadline (a trickling server can't hang us)."""

    connect: float = 5.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 30.0
    deadline: float = 60.0

    def httpx_timeout(self) -> httpx.Timeout:
        """The per-phase part as an `httpx.Timeout`."""
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@dataclass(frozen=True)
class Detail:
    """A parsed detail response and the exact text it came from (kept for audit)."""

    response: DetailResponse
    raw: str


Sleep = Callable[[float], Awaitable[None]]


class HaiperClient:
    """Async client for the two read endpoints.

    Concurrency is a pool of single-connection ``httpx.AsyncClient``s: here that costs a ninth of
    the CPU per request of one client sharing a 64-connection pool (httpcore rescans its pool).
    Every request first books a slot in the shared `RateLimiter`.
    """

    def __init__(
        self,
        api_url: str,
        api_key: SecretStr,
        *,
        concurrency: int = 16,
        limiter: RateLimiter | None = None,
        timeouts: Timeouts | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._limiter = limiter
        self._sleep = sleep
        self._timeouts = timeouts or Timeouts()
        self._headers = {
            "Authorization": f"Bearer {api_key.get_secret_value()}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if transport is not None:
            shared = self._make_client(transport)
            self._clients = [shared]
            self._pool: list[httpx.AsyncClient] = [shared] * concurrency
        else:
            self._clients = [self._make_client(None) for _ in range(concurrency)]
            self._pool = list(self._clients)
        self._idle: asyncio.Queue[httpx.AsyncClient] | None = None

    def _make_client(self, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        return httpx.AsyncClient(
            verify=_tls_context(),
            base_url=self.api_url,
            headers=self._headers,
            timeout=self._timeouts.httpx_timeout(),
            limits=limits,
            transport=transport,
            # The API never redirects; refusing keeps the bearer token on its own host.
            follow_redirects=False,
            trust_env=False,
        )

    async def __aenter__(self) -> HaiperClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection."""
        for client in self._clients:
            await client.aclose()

    async def get_status(self, creation_id: str) -> StatusResponse:
        """``GET /v1/jobs/{id}/status``, parsed."""
        text = await self._get(f"/v1/jobs/{id_path_segment(creation_id)}/status")
        return StatusResponse.model_validate(self._json(text, f"/v1/jobs/{creation_id}/status"))

    async def get_detail(self, creation_id: str) -> Detail:
        """``GET /v1/creation/{id}``, parsed, with the raw text kept."""
        path = f"/v1/creation/{id_path_segment(creation_id)}"
        text = await self._get(path)
        return Detail(DetailResponse.model_validate(self._json(text, path)), text)

    def _json(self, text: str, path: str) -> dict[str, Any]:
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise InvalidResponse(
                "response body is not a JSON object",
                method="GET",
                url=self.api_url + path,
                status_code=200,
                body=text[:MAX_KEPT_BODY],
            )
        return document

    async def _get(self, path: str) -> str:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for client in self._pool:
                self._idle.put_nowait(client)
        client = await self._idle.get()
        try:
            if self._limiter is None:
                return await self._send(client, path)
            slot, wait = self._limiter.reserve()
            try:
                if wait > 0:
                    await self._sleep(wait)
                return await self._send(client, path)
            finally:
                self._limiter.complete(slot)
        finally:
            self._idle.put_nowait(client)

    async def _send(self, client: httpx.AsyncClient, path: str) -> str:
        url = self.api_url + path
        try:
            async with asyncio.timeout(self._timeouts.deadline):
                response = await client.get(path)
        except (httpx.TransportError, TimeoutError) as exc:
            # Our own message only: httpx exceptions hold the request, and so the token.
            kind = (
                "timed out"
                if isinstance(exc, TimeoutError | httpx.TimeoutException)
                else (f"transport error ({type(exc).__name__})")
            )
            raise TransportFailed(f"GET {url} {kind}", method="GET", url=url) from None
        status = response.status_code
        if status == 200:
            return response.text
        return self._raise_for(response, url)

    def _raise_for(self, response: httpx.Response, url: str) -> str:
        status = response.status_code
        body = response.text[:MAX_KEPT_BODY]
        error = _error_body(body)
        code = error.code if error else None
        detail = error.message if error and error.message else response.reason_phrase
        message = f"GET {url} -> HTTP {status}" + (f" {code}" if code else "") + f": {detail}"
        common: dict[str, Any] = dict(
            method="GET", url=url, status_code=status, code=code, body=body
        )
        if status == 401:
            raise Unauthorized(message, **common)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise RateLimited(message, retry_after=retry_after, **common)
        if 300 <= status < 400:
            message = f"GET {url} -> HTTP {status}: unexpected redirect, not followed"
        raise RequestFailed(message, **common)


@cache
def _tls_context() -> ssl.SSLContext:
    # Building a default context costs ~15 ms of CPU; one per pooled client adds up.
    return ssl.create_default_context()


def _error_body(text: str) -> ErrorBody | None:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    try:
        return ErrorBody.model_validate(document)
    except ValueError:
        return None
