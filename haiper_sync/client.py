"""The Haiper API client: one request per call, typed errors, pydantic models out."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache, partial
from http import HTTPStatus
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
from haiper_sync.transport import LeanTransport, RawResponse

# Enough of a body to diagnose it in sync_errors without storing megabytes of HTML.
MAX_KEPT_BODY = 4_000
USER_AGENT = "haiper-sync/0.1"


@dataclass(frozen=True)
class Timeouts:
    """Connect and idle-read timeouts, and a whole-request deadline (so trickling can't hang us)."""

    connect: float = 5.0
    read: float = 30.0
    deadline: float = 60.0


@dataclass(frozen=True)
class Detail:
    """A parsed detail response and the exact text it came from (kept for audit)."""

    response: DetailResponse
    raw: str


Sleep = Callable[[float], Awaitable[None]]


class HaiperClient:
    """Async client for the two read endpoints.

    Requests go to an ``httpx`` transport, by default `LeanTransport` through its pre-encoded
    fast path; any other transport (tests pass ``httpx.MockTransport``) gets an
    ``httpx.Request``. ``httpx.AsyncClient`` is not used: its URL merging, cookie jar, auth and
    redirect machinery cost more CPU per request here than the request itself and buy nothing
    for two GET endpoints. At most ``concurrency`` requests are in flight; each one first books
    a slot in the shared `RateLimiter`.
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
        self._concurrency = concurrency
        self._headers = httpx.Headers(
            {
                "Authorization": f"Bearer {api_key.get_secret_value()}",
                "Accept": "application/json",
                "Accept-Encoding": "identity",
                "User-Agent": USER_AGENT,
            }
        )
        self._transport = transport or LeanTransport(
            max_connections=concurrency,
            connect_timeout=self._timeouts.connect,
            read_timeout=self._timeouts.read,
            ssl_context=_tls_context(),
        )
        self._exchange: Callable[[str], Awaitable[RawResponse]] = self._via_httpx
        if isinstance(self._transport, LeanTransport):
            self._exchange = partial(
                self._transport.get, self._transport.endpoint(self.api_url, self._headers)
            )
        self._slots: asyncio.Semaphore | None = None

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
        await self._transport.aclose()

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
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._concurrency)
        async with self._slots:
            if self._limiter is None:
                return await self._send(path)
            slot, wait = self._limiter.reserve()
            try:
                if wait > 0:
                    await self._sleep(wait)
                return await self._send(path)
            finally:
                self._limiter.complete(slot)

    async def _send(self, path: str) -> str:
        url = self.api_url + path
        try:
            async with asyncio.timeout(self._timeouts.deadline):
                response = await self._exchange(path)
        except (httpx.TransportError, TimeoutError) as exc:
            # Our own message only: httpx exceptions hold the request, and so the token.
            kind = (
                "timed out"
                if isinstance(exc, TimeoutError | httpx.TimeoutException)
                else (f"transport error ({type(exc).__name__})")
            )
            raise TransportFailed(f"GET {url} {kind}", method="GET", url=url) from None
        if response.status == 200:
            # JSON is UTF-8 (RFC 8259).
            return response.body.decode("utf-8", "replace")
        return self._raise_for(response, url)

    async def _via_httpx(self, path: str) -> RawResponse:
        request = httpx.Request("GET", self.api_url + path, headers=self._headers)
        response = await self._transport.handle_async_request(request)
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        return RawResponse(response.status_code, response.headers.raw, body)

    def _raise_for(self, response: RawResponse, url: str) -> str:
        status = response.status
        body = response.body.decode("utf-8", "replace")[:MAX_KEPT_BODY]
        error = _error_body(body)
        code = error.code if error else None
        detail = error.message if error and error.message else _reason(status)
        message = f"GET {url} -> HTTP {status}" + (f" {code}" if code else "") + f": {detail}"
        common: dict[str, Any] = dict(
            method="GET", url=url, status_code=status, code=code, body=body
        )
        if status == 401:
            raise Unauthorized(message, **common)
        if status == 429:
            retry_after = parse_retry_after(response.header("Retry-After"))
            raise RateLimited(message, retry_after=retry_after, **common)
        if 300 <= status < 400:
            message = f"GET {url} -> HTTP {status}: unexpected redirect, not followed"
        raise RequestFailed(message, **common)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unknown status"


@cache
def _tls_context() -> ssl.SSLContext:
    # Building a default context costs ~15 ms of CPU; one per client adds up.
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
