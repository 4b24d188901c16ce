"""Streaming one file from a CDN into the archive: hashed and counted on the way, never whole
in memory, retried on a cut-short body, a reset or a 5xx."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import obstore

from haiper_sync.api.network import Network, build_http_client, describe
from haiper_sync.api.retry import Action, RetryPolicy
from haiper_sync.errors import MediaError
from haiper_sync.media.destination import (
    PART_SIZE,
    PARTS_IN_FLIGHT,
    Destination,
    store_failure,
)
from haiper_sync.media.plan import MediaFile, extension, media_key
from haiper_sync.media.policy import Bandwidth, decide_download, is_web_url, next_hop, status_error

USER_AGENT = "haiper-sync-media/0.1"
# Each chunk crosses into obstore's Rust side once: fewer, bigger chunks cost less CPU.
CHUNK = 1024 * 1024
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Stored:
    """A file complete at its key."""

    key: str
    bytes: int
    sha256: str
    content_type: str | None


def build_media_client(
    network: Network, *, connections: int, connect_timeout: float, read_timeout: float
) -> httpx.AsyncClient:
    """The HTTP client for media hosts: its own pool, never the API key, bodies undecoded."""
    client = build_http_client(
        network,
        connections=connections,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    # identity: the bytes hashed and counted are the bytes the CDN's Content-Length speaks of.
    client.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    client.headers.pop("Authorization", None)
    return client


class Downloader:
    """Fetches files into a `Destination`; ``attempts`` counts HTTP attempts per call."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        destination: Destination,
        *,
        max_bytes: int,
        policy: RetryPolicy,
        sleep: Sleep,
        draw: Callable[[], float],
        bandwidth: Bandwidth | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self._http = http
        self._destination = destination
        self._max_bytes = max_bytes
        self._policy = policy
        self._sleep = sleep
        self._draw = draw
        self._bandwidth = bandwidth
        self._on_bytes = on_bytes

    async def fetch(self, file: MediaFile, attempts: list[int]) -> Stored:
        """Download ``file`` whole to its key; ``attempts[0]`` is incremented per try.

        Raises `MediaError` (`LinkExpired` for a refused link) or a run-stopping
        `ArchiveUnavailable`.
        """
        label = file.label()
        if not is_web_url(file.url):
            raise MediaError(f"{label}: not an http(s) link, not fetched")
        attempt = 0
        while True:
            attempt += 1
            attempts[0] += 1
            try:
                return await self._attempt(file, label)
            except MediaError as error:
                decision = decide_download(error, attempt, self._policy, self._draw())
                if decision.action is not Action.RETRY:
                    raise
                await self._sleep(decision.delay)

    async def _open(self, url: str, label: str) -> httpx.Response:
        hops = 0
        while True:
            try:
                request = self._http.build_request("GET", url)
                response = await self._http.send(request, stream=True)
            except httpx.HTTPError as error:
                raise MediaError(f"{label}: {describe(error)}", transient=True) from None
            if response.status_code in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                await response.aclose()
                url = next_hop(url, location, hops, label)
                hops += 1
                continue
            if response.status_code != 200:
                await response.aclose()
                raise status_error(response.status_code, label)
            return response

    async def _attempt(self, file: MediaFile, label: str) -> Stored:
        response = await self._open(file.url, label)
        try:
            declared_text = response.headers.get("Content-Length", "")
            declared = int(declared_text) if declared_text.isdigit() else None
            if declared is not None and declared > self._max_bytes:
                raise MediaError(
                    f"{label}: {declared:,} bytes is over the cap of {self._max_bytes:,}"
                )
            content_type = response.headers.get("Content-Type")
            key = media_key(file, extension(file.url, content_type))
            hasher = hashlib.sha256()
            received = 0

            async def body() -> AsyncGenerator[bytes, None]:
                nonlocal received
                try:
                    async for chunk in response.aiter_raw(CHUNK):
                        received += len(chunk)
                        if received > self._max_bytes:
                            raise MediaError(f"{label}: over the cap of {self._max_bytes:,} bytes")
                        hasher.update(chunk)
                        if self._bandwidth is not None:
                            wait = self._bandwidth.reserve(len(chunk))
                            if wait > 0:
                                await self._sleep(wait)
                        if self._on_bytes is not None:
                            self._on_bytes(len(chunk))
                        yield chunk
                except httpx.HTTPError as error:
                    raise MediaError(
                        f"{label}: body cut off after {received:,} bytes: {describe(error)}",
                        transient=True,
                    ) from None
                if declared is not None and received != declared:
                    raise MediaError(
                        f"{label}: body of {received:,} bytes, {declared:,} announced",
                        transient=True,
                    )

            stream = body()
            try:
                if declared is not None and declared <= PART_SIZE:
                    # A file that fits one part is one put (one request on an object store,
                    # not a multipart upload of three), held in memory: at most PART_SIZE
                    # per file in flight.
                    whole = b"".join([chunk async for chunk in stream])
                    await obstore.put_async(self._destination.store, key, whole)
                else:
                    await obstore.put_async(
                        self._destination.store,
                        key,
                        stream,
                        chunk_size=PART_SIZE,
                        max_concurrency=PARTS_IN_FLIGHT,
                    )
            except MediaError:
                raise
            except Exception as error:  # the store's failure: typed here, nowhere else
                raise store_failure(error, label, self._destination.base) from None
            finally:
                await stream.aclose()
            self._destination.sweep(key)
            return Stored(key, received, hasher.hexdigest(), content_type)
        finally:
            await response.aclose()
