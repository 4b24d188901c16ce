"""HTTP/1.1 as the stubs speak it: what a stub saw, what it answers, and the framing."""

from __future__ import annotations

import asyncio
import http
from dataclasses import dataclass, field

HEAD_LIMIT = 1 << 20


@dataclass(frozen=True)
class SeenRequest:
    """One request as the server received it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    version: str = "HTTP/1.1"
    conn: int = 0  # serial number of the connection it arrived on (1, 2, ...)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((v for n, v in self.headers if n.lower() == wanted), None)

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]


@dataclass
class Reply:
    """What a ``CannedServer`` handler answers."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    chunked: bool = False
    close: bool = False


def parse_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    """Split a request head into method, target, version and header pairs."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise ValueError(f"bad request line: {lines[0]!r}")
    method, target, version = parts
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line: {line!r}")
        headers.append((name.strip(), value.strip()))
    return method, target, version, headers


def get_header(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive), or None."""
    wanted = name.lower()
    return next((v for n, v in headers if n.lower() == wanted), None)


def has_token(headers: list[tuple[str, str]], name: str, token: str) -> bool:
    """Whether a comma-separated header such as Connection lists ``token``."""
    return any(
        n.lower() == name.lower() and token in (t.strip().lower() for t in v.split(","))
        for n, v in headers
    )


async def read_body(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    headers: list[tuple[str, str]],
) -> bytes:
    """Read a request body framed by Content-Length or chunked encoding."""
    if (get_header(headers, "expect") or "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    if has_token(headers, "transfer-encoding", "chunked"):
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Trailers end at an empty line.
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = get_header(headers, "content-length")
    return await reader.readexactly(int(length)) if length else b""


def _status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason>`` with CRLF."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")


def encode_head(status: int, headers: list[tuple[str, str]]) -> bytes:
    """Status line plus headers plus the blank line."""
    lines = b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in headers)
    return _status_line(status) + lines + b"\r\n"


def chunks(body: bytes, parts: int = 3) -> list[bytes]:
    """``body`` in chunked transfer coding, split into a few chunks plus the last-chunk."""
    step = max(1, -(-len(body) // parts))
    out = [
        f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        for piece in (body[i : i + step] for i in range(0, len(body), step))
    ]
    out.append(b"0\r\n\r\n")
    return out


def simple_response(status: int, text: str, extra: list[tuple[str, str]] | None = None) -> bytes:
    """A complete small response that closes the connection."""
    body = text.encode()
    headers = [
        *(extra or []),
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ]
    return encode_head(status, headers) + body
