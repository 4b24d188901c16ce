"""The simulated Haiper API as a Starlette app: auth, rate limit, faults, and the two endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import random
import socket
import struct
from collections import Counter, deque
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from haiper_sync.simulator.data import (
    MEDIA_PREFIX,
    MediaLinks,
    creation_detail,
    creation_status,
    error_body,
    forced_http_error,
    is_valid_id,
    media_bytes,
    media_content_type,
    media_signature,
    media_size,
)
from haiper_sync.simulator.faults import (
    DRIFT_KINDS,
    apply_drift,
    parse_fault,
    parse_media_fault,
)
from haiper_sync.simulator.state import SimulatorConfig, SimulatorStats

__all__ = ["SimulatorConfig", "SimulatorStats", "create_app"]

_TRANSPORT_KEY = "haiper_sim.transport"
_JSON = "application/json"
_PREFIX_MESSAGES = {
    400: "invalid request",
    403: "permission denied to the generation",
    404: "the generation does not exist or you may not process it",
}


class ConnectionResetFault(RuntimeError):
    """Raised when a reset fault cannot abort the socket (server other than uvicorn)."""


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _json(
    status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    return Response(_dump(body), status_code=status_code, headers=headers, media_type=_JSON)


def _error(status_code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status_code, error_body(status_code, message), headers)


def _find_transport(send: Send) -> asyncio.BaseTransport | None:
    # uvicorn hands the app the bound `send` of its per-request cycle, which holds the transport;
    # that is the only handle that lets the app drop the TCP connection with no response at all.
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    return transport if isinstance(transport, asyncio.BaseTransport) else None


class _SimulatorApp(Starlette):
    sim: _Simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # Captured here because Starlette's middleware wraps `send` before routes see it.
            scope[_TRANSPORT_KEY] = _find_transport(send)
            if scope["path"].startswith(MEDIA_PREFIX) and scope["method"] in ("GET", "HEAD"):
                await self.sim.media(scope, send)
                return
            endpoint = _api_endpoint(scope)
            if endpoint is not None:
                # The two API routes skip Starlette's middleware and router: in benchmarks
                # they cost the simulator a fifth of its CPU, which the client then waits for.
                name, creation_id = endpoint
                scope["path_params"] = {"creation_id": creation_id}
                response = await self.sim._handle(Request(scope, receive), name)
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _api_endpoint(scope: Scope) -> tuple[str, str] | None:
    """``("status"|"detail", id)`` for a GET of one of the two API routes, else None."""
    if scope["method"] != "GET":
        return None
    parts = scope["path"].split("/")
    if len(parts) == 5 and parts[1] == "v1" and parts[2] == "jobs" and parts[4] == "status":
        return ("status", parts[3]) if parts[3] else None
    if len(parts) == 4 and parts[1] == "v1" and parts[2] == "creation":
        return ("detail", parts[3]) if parts[3] else None
    return None


class _Simulator:
    def __init__(self, config: SimulatorConfig, stats: SimulatorStats) -> None:
        self.config = config
        self.stats = stats
        self._rng = random.Random(config.fault_seed)
        self._windows: dict[str, deque[float]] = {}
        self._fault_hits: Counter[tuple[str, str]] = Counter()

    async def status(self, request: Request) -> Response:
        return await self._handle(request, "status")

    async def detail(self, request: Request) -> Response:
        return await self._handle(request, "detail")

    async def admin_stats(self, request: Request) -> Response:
        return JSONResponse(self.stats.snapshot())

    async def admin_reset(self, request: Request) -> Response:
        self.stats.reset()
        return JSONResponse({"ok": True})

    async def admin_epoch(self, request: Request) -> Response:
        self.config.epoch = int(request.path_params["n"])
        return JSONResponse({"epoch": self.config.epoch})

    async def _handle(self, request: Request, endpoint: str) -> Response:
        creation_id = str(request.path_params["creation_id"])
        self.stats.record_request(endpoint, creation_id)
        response = await self._respond(request, endpoint, creation_id)
        if response is None:
            self.stats.record_reset()
            return await self._reset_connection(request)
        self.stats.record_status(response.status_code)
        return response

    async def _respond(self, request: Request, endpoint: str, creation_id: str) -> Response | None:
        cfg = self.config
        if cfg.latency_ms > 0:
            await asyncio.sleep(cfg.latency_ms / 1000)
        key = _bearer_key(request)
        if key is None or key not in cfg.api_keys:
            return _error(401, "invalid API key", {"WWW-Authenticate": "Bearer"})
        retry_after = self._take_slot(key)
        if retry_after is not None:
            return _error(429, "rate limit exceeded", {"Retry-After": str(retry_after)})

        kind = self._forced_fault(endpoint, creation_id) or self._random_fault()
        if kind == "slow":
            await asyncio.sleep(cfg.slow_seconds)
            kind = None
        if kind == "429":
            return _error(429, "rate limit exceeded", {"Retry-After": "1"})
        if kind == "500":
            return _error(500, "internal error")
        if kind == "reset":
            return None
        if kind == "not_json":
            return Response("<html>oops</html>", status_code=200, media_type="text/html")
        if kind == "empty_body":
            return Response(b"", status_code=200, media_type=_JSON)

        status_code, body = self._normal(endpoint, creation_id, kind, self._media_links(request))
        if kind == "truncated":
            raw = _dump(body)
            return Response(raw[: len(raw) // 2], status_code=200, media_type=_JSON)
        return _json(status_code, body)

    def _normal(
        self, endpoint: str, creation_id: str, kind: str | None, media: MediaLinks | None = None
    ) -> tuple[int, dict[str, Any]]:
        if not is_valid_id(creation_id):
            return 400, error_body(400, "creation_id must match [A-Za-z0-9_-]{1,128}")
        forced = forced_http_error(creation_id)
        if forced is not None:
            return forced, error_body(forced, _PREFIX_MESSAGES[forced])
        status = creation_status(creation_id, self.config.epoch)
        if endpoint == "status":
            return 200, {"status": "success", "value": status}
        if status["status"] != "succeed":
            if self.config.unfinished_detail == "200":
                unfinished = {"creation_id": creation_id, "status": status["status"]}
                return 200, {"status": "success", "value": unfinished}
            # The real API has no detail for a creation that has not finished successfully.
            msg = f"creation {creation_id} is not finished (status: {status['status']})"
            return 400, error_body(400, msg)
        value = creation_detail(creation_id, self.config.engagement_step, media)
        envelope: dict[str, Any] = {"status": "success", "value": value}
        if kind in DRIFT_KINDS:
            envelope["value"] = apply_drift(kind, value)
            if kind == "drift_extra_fields":
                envelope["request_id"] = f"req-{creation_id}"
        return 200, envelope

    def _media_links(self, request: Request) -> MediaLinks | None:
        ttl = self.config.media_ttl
        if ttl is None:
            return None
        host, port = request.scope["server"] or ("127.0.0.1", 80)
        expires = int(self.config.wall_clock() + ttl)
        return MediaLinks(f"{request.url.scheme}://{host}:{port}/media", expires)

    async def media(self, scope: Scope, send: Send) -> None:
        """``GET /media/<path>?Expires=&Signature=[&size=]``: deterministic bytes, Range, faults."""
        path = scope["path"][len(MEDIA_PREFIX) :]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        status, extra, start, end, fault = self._media_answer(path, scope, headers)
        self.stats.record_media(path, status, "authorization" in headers)
        if status >= 400:
            body = _dump(error_body(status, "media request refused"))
            await _start(send, status, [(b"content-type", _JSON.encode())], len(body))
            await send({"type": "http.response.body", "body": body})
            return
        response_headers = [
            (b"content-type", media_content_type(path).encode()),
            (b"accept-ranges", b"bytes"),
            *extra,
        ]
        await _start(send, status, response_headers, end - start)
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        cut = start + (end - start) // 2 if fault in ("reset", "truncated") else end
        offset = start
        while offset < cut:
            piece = min(cut, offset + 256 * 1024)
            await send(
                {
                    "type": "http.response.body",
                    "body": media_bytes(path, offset, piece),
                    "more_body": True,
                }
            )
            offset = piece
        if fault in ("reset", "truncated"):
            self.stats.record_reset()
            await _drop(scope.get(_TRANSPORT_KEY), reset=fault == "reset")
            return
        await send({"type": "http.response.body", "body": b""})

    def _media_answer(
        self, path: str, scope: Scope, headers: dict[str, str]
    ) -> tuple[int, list[tuple[bytes, bytes]], int, int, str | None]:
        cfg = self.config
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        expires = query.get("Expires", "")
        if cfg.media_ttl is None or not expires.isdigit():
            return 404, [], 0, 0, None
        if not hmac.compare_digest(query.get("Signature", ""), media_signature(path, int(expires))):
            return 403, [], 0, 0, None
        if int(expires) <= cfg.wall_clock():
            return 403, [], 0, 0, None
        creation_id = path.split("/")[1] if path.startswith("creations/") else ""
        fault = self._media_fault(path, creation_id)
        if fault in ("500", "503", "403"):
            return int(fault), [], 0, 0, None
        size = cfg.media_sizes.get(path) or cfg.media_sizes.get(creation_id)
        if size is None:
            asked = query.get("size", "")
            size = int(asked) if asked.isdigit() else media_size(path, cfg.media_scale)
        wanted = _byte_range(headers.get("range"), size)
        if wanted is None:
            return 416, [(b"content-range", f"bytes */{size}".encode())], 0, 0, None
        start, end = wanted
        if (start, end) == (0, size) and "range" not in headers:
            return 200, [], 0, size, fault
        content_range = f"bytes {start}-{end - 1}/{size}".encode()
        return 206, [(b"content-range", content_range)], start, end, fault

    def _media_fault(self, path: str, creation_id: str) -> str | None:
        faults = self.config.media_faults
        key = path if path in faults else creation_id
        spec = faults.get(key)
        if spec is None:
            return None
        kind, limit = parse_media_fault(spec)
        self._fault_hits[("media", key)] += 1
        if limit is not None and self._fault_hits[("media", key)] > limit:
            return None
        return kind

    def _take_slot(self, key: str) -> int | None:
        """Record a request in the key's sliding window; return Retry-After seconds if full."""
        limit = self.config.rate_limit_per_minute
        if limit is None:
            return None
        now = self.config.clock()
        window = self._windows.setdefault(key, deque())
        span = self.config.rate_window_seconds
        while window and now - window[0] >= span:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(window[0] + span - now))
        window.append(now)
        return None

    def _forced_fault(self, endpoint: str, creation_id: str) -> str | None:
        faults = self.config.id_faults
        spec = faults.get(f"{endpoint}:{creation_id}") or faults.get(creation_id)
        if spec is None:
            return None
        kind, limit = parse_fault(spec)
        hits_key = (endpoint, creation_id)
        self._fault_hits[hits_key] += 1
        if limit is not None and self._fault_hits[hits_key] > limit:
            return None
        return kind

    def _random_fault(self) -> str | None:
        cfg = self.config
        if cfg.p_slow == 0 and cfg.p_429 + cfg.p_500 + cfg.p_reset + cfg.p_truncated == 0:
            return None
        # Two draws per request, always, so the sequence depends only on the request order.
        slow = self._rng.random() < cfg.p_slow
        roll = self._rng.random()
        for kind, p in (
            ("429", cfg.p_429),
            ("500", cfg.p_500),
            ("reset", cfg.p_reset),
            ("truncated", cfg.p_truncated),
        ):
            if roll < p:
                return kind
            roll -= p
        return "slow" if slow else None

    async def _reset_connection(self, request: Request) -> Response:
        transport = request.scope.get(_TRANSPORT_KEY)
        if not isinstance(transport, asyncio.BaseTransport):
            raise ConnectionResetFault("reset fault needs uvicorn to drop the connection")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 turns close() into a TCP RST, so the client sees "connection reset".
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()
        else:
            transport.close()
        # Let uvicorn's connection_lost run first, so it discards the response returned below.
        await asyncio.sleep(0)
        return Response(b"", status_code=500)


async def _start(send: Send, status: int, headers: list[tuple[bytes, bytes]], length: int) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(length).encode())],
        }
    )


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single ``bytes=a-b`` / ``a-`` / ``-n`` range; None: 416."""
    if not header:
        return 0, size
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or not dash or "," in spec:
        return None
    if not first:  # the last n bytes
        if not last.isdigit() or int(last) == 0:
            return None
        return max(0, size - int(last)), size
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if start >= size or end <= start:
        return None
    return start, end


async def _drop(transport: object, *, reset: bool) -> None:
    """End the connection mid-body: a TCP RST (``reset``) or a plain close."""
    if not isinstance(transport, asyncio.WriteTransport):
        raise ConnectionResetFault("media faults need uvicorn to drop the connection")
    # What was sent must reach the client first, or the fault would look like no body at all.
    for _ in range(1000):
        if transport.get_write_buffer_size() == 0:
            break
        await asyncio.sleep(0.001)
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    # Let uvicorn's connection_lost run, so it does not report an unfinished response.
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def _bearer_key(request: Request) -> str | None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


async def _http_error(request: Request, exc: Exception) -> Response:
    status_code = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return _error(status_code, detail)


def create_app(config: SimulatorConfig, stats: SimulatorStats) -> Starlette:
    """Build the simulator app; `config` is read live per request, `stats` is updated in place."""
    sim = _Simulator(config, stats)
    routes = [
        Route("/v1/jobs/{creation_id}/status", sim.status, methods=["GET"]),
        Route("/v1/creation/{creation_id}", sim.detail, methods=["GET"]),
        Route("/_sim/stats", sim.admin_stats, methods=["GET"]),
        Route("/_sim/reset", sim.admin_reset, methods=["POST"]),
        Route("/_sim/epoch/{n:int}", sim.admin_epoch, methods=["POST"]),
    ]
    app = _SimulatorApp(routes=routes, exception_handlers={HTTPException: _http_error})
    app.sim = sim
    app.state.simulator = sim
    return app
