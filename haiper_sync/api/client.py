"""The Haiper API client: one request per call, typed errors, pydantic models out."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any

import httpx
from pydantic import SecretStr

from haiper_sync.api.breaker import CircuitBreaker
from haiper_sync.api.budget import RequestBudget
from haiper_sync.api.ids import id_path_segment
from haiper_sync.api.models import DetailResponse, ErrorBody, StatusResponse
from haiper_sync.api.network import Network, build_http_client, describe
from haiper_sync.api.ratelimit import RateLimiter
from haiper_sync.api.retry import certificate_never_verifies, parse_retry_after
from haiper_sync.errors import (
    ApiError,
    ApiUntrusted,
    BudgetSpent,
    InvalidResponse,
    RateLimited,
    RequestFailed,
    ResponseTooLarge,
    TransportFailed,
    Unauthorized,
)
from haiper_sync.settings import DEFAULTS

# Enough of a body to diagnose it in sync_errors without storing megabytes of HTML.
MAX_KEPT_BODY = 4_000
# A detail document is a few KB; anything this big is not one (and must not fill memory).
MAX_BODY = 4 * 1024 * 1024
USER_AGENT = "haiper-sync/0.1"


@dataclass(frozen=True)
class Timeouts:
    """Connect and idle-read timeouts, and a whole-request deadline (so trickling can't hang us)."""

    connect: float = DEFAULTS.connect_timeout
    read: float = DEFAULTS.read_timeout
    deadline: float = DEFAULTS.request_deadline


@dataclass(frozen=True)
class Detail:
    """A parsed detail response and the exact text it came from (kept for audit)."""

    response: DetailResponse
    raw: str


Sleep = Callable[[float], Awaitable[None]]


class HaiperClient:
    """Async client for the two read endpoints, on ``httpx.AsyncClient``.

    At most ``concurrency`` requests are in flight; each one first takes its share of the
    `RequestBudget` and books a slot in the shared `RateLimiter`, and reports to the
    `CircuitBreaker`, if given. Every failure leaves as a
    `HaiperSyncError` whose message keeps the cause and never the token. ``transport``
    replaces the network (tests pass ``httpx.MockTransport``).
    """

    def __init__(
        self,
        api_url: str,
        api_key: SecretStr,
        *,
        concurrency: int = DEFAULTS.concurrency,
        limiter: RateLimiter | None = None,
        breaker: CircuitBreaker | None = None,
        budget: RequestBudget | None = None,
        timeouts: Timeouts | None = None,
        network: Network | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        max_body: int = MAX_BODY,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._limiter = limiter
        self._breaker = breaker
        self._budget = budget
        self._sleep = sleep
        self._max_body = max_body
        self._timeouts = timeouts or Timeouts()
        self._concurrency = concurrency
        self._http = build_http_client(
            network or Network(),
            connections=concurrency,
            connect_timeout=self._timeouts.connect,
            read_timeout=self._timeouts.read,
            transport=transport,
        )
        # httpx masks Authorization in the headers' repr; Accept-Encoding is httpx's own
        # (gzip, deflate, br, zstd).
        self._http.headers.update(
            {
                "Authorization": f"Bearer {api_key.get_secret_value()}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            }
        )
        self._slots: asyncio.Semaphore | None = None
        # Until when (time.monotonic) a request waits for its turn in the rate limit: progress
        # lines say so instead of looking stalled.
        self.rate_limited_until = 0.0
        # Until one exchange has ended, requests go one at a time: a certificate that can
        # never verify then costs one request, not a whole first wave of them.
        self._first_contact: asyncio.Lock | None = None
        self._contacted = False
        self._untrusted: ApiUntrusted | None = None

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
        await self._http.aclose()

    async def get_status(self, creation_id: str) -> StatusResponse:
        """``GET /v1/jobs/{id}/status``, parsed."""
        path = f"/v1/jobs/{id_path_segment(creation_id)}/status"
        text = await self._get(path)
        return StatusResponse.model_validate(self._json(text, path))

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
            self._check_trusted()
            if self._breaker is not None:
                self._breaker.check()
            if self._budget is not None and not self._budget.take():
                raise BudgetSpent(
                    f"not sent: the run's budget of {self._budget.limit} requests is spent"
                )
            if self._limiter is None:
                return await self._send_once_contacted(path)
            slot, wait = self._limiter.reserve()
            try:
                if wait > 0:
                    self.rate_limited_until = max(self.rate_limited_until, time.monotonic() + wait)
                    await self._sleep(wait)
                return await self._send_once_contacted(path)
            finally:
                self._limiter.complete(slot)

    def _check_trusted(self) -> None:
        if self._untrusted is not None:
            raise ApiUntrusted(str(self._untrusted), url=self._untrusted.url)

    async def _send_once_contacted(self, path: str) -> str:
        if self._contacted:
            return await self._send(path)
        if self._first_contact is None:
            self._first_contact = asyncio.Lock()
        async with self._first_contact:
            self._check_trusted()
            if not self._contacted:
                try:
                    return await self._send(path)
                finally:
                    self._contacted = self._untrusted is None
        # The first request reached the API while this one waited: the rest go in parallel.
        return await self._send(path)

    async def _send(self, path: str) -> str:
        url = self.api_url + path
        failure: ApiError | None = None
        try:
            async with asyncio.timeout(self._timeouts.deadline):
                status, headers, body = await self._exchange(url)
        except ResponseTooLarge as too_large:
            failure = too_large
        except Exception as error:  # whatever the HTTP stack raises: typed here, nowhere else
            failure = _failure(error, url, self.api_url)
        # Raised outside the handler: the HTTP stack's exception (it holds the request, and
        # so the token) is not chained to ours.
        if isinstance(failure, ApiUntrusted):
            self._untrusted = failure
        if failure is not None:
            if self._breaker is not None and isinstance(failure, TransportFailed):
                self._breaker.failed(str(failure))
            raise failure
        if self._breaker is not None:
            if status >= 500:
                self._breaker.failed(f"GET {url} -> HTTP {status}")
            else:
                self._breaker.succeeded()
        # JSON is UTF-8 (RFC 8259).
        text = body.decode("utf-8", "replace")
        if status == 200:
            return text
        return self._raise_for(status, headers, text, url)

    async def _exchange(self, url: str) -> tuple[int, httpx.Headers, bytes]:
        async with self._http.stream("GET", url) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self._max_body:
                raise self._too_large(url, response.status_code)
            parts: list[bytes] = []
            size = 0
            async for part in response.aiter_bytes():
                size += len(part)
                if size > self._max_body:
                    raise self._too_large(url, response.status_code)
                parts.append(part)
            return response.status_code, response.headers, b"".join(parts)

    def _too_large(self, url: str, status: int) -> ResponseTooLarge:
        return ResponseTooLarge(
            f"GET {url} -> HTTP {status}: body over {self._max_body:,} bytes, not read",
            method="GET",
            url=url,
            status_code=status,
        )

    def _raise_for(self, status: int, headers: httpx.Headers, body: str, url: str) -> str:
        body = body[:MAX_KEPT_BODY]
        error = _error_body(body)
        code = error.code if error else None
        detail = error.message if error and error.message else _reason(status)
        message = f"GET {url} -> HTTP {status}" + (f" {code}" if code else "") + f": {detail}"
        common: dict[str, Any] = dict(
            method="GET", url=url, status_code=status, code=code, body=body
        )
        if status == 401:
            raise Unauthorized(
                f"the API at {self.api_url} refused the key (HTTP 401: {detail}); "
                "check HAIPER_API_KEY",
                **common,
            )
        if status == 429:
            retry_after = parse_retry_after(headers.get("Retry-After"))
            raise RateLimited(message, retry_after=retry_after, **common)
        if 300 <= status < 400:
            message = f"GET {url} -> HTTP {status}: unexpected redirect, not followed"
        raise RequestFailed(message, **common)


def _failure(error: Exception, url: str, api_url: str) -> ApiError:
    """Our typed error for an exception of the HTTP stack: only its text survives."""
    reason = describe(error)
    if certificate_never_verifies(error):
        hint = ""
        if "local issuer" in reason or "self-signed" in reason or "self signed" in reason:
            hint = "; if it uses a private CA, set HAIPER_CA_BUNDLE to that CA's PEM file"
        return ApiUntrusted(f"the API at {api_url} cannot be trusted: {reason}{hint}", url=api_url)
    if isinstance(error, httpx.DecodingError):
        # The server answered, in an encoding we cannot read: that ID's parse error.
        return InvalidResponse(f"GET {url}: {reason}", method="GET", url=url)
    return TransportFailed(f"GET {url} failed: {reason}", method="GET", url=url)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unknown status"


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
