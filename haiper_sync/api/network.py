"""The HTTP stack under the client: ``httpx.AsyncClient`` on a well-kept transport.

httpx does the HTTP: proxies from the environment (``HTTP(S)_PROXY``, ``ALL_PROXY``,
``NO_PROXY``) or an explicit one, TLS verification, gzip/deflate/br/zstd decoding. Underneath,
by default, aiohttp's connection pool (through ``httpx-aiohttp``, as the OpenAI and Anthropic
SDKs ship it): happy eyeballs, keep-alive expiry, header size limits, and a quarter of the CPU
per request of httpcore's shared pool (docs/performance.md). ``backend="httpx"`` selects httpx's
own transport instead (it also speaks to SOCKS proxies when ``socksio`` is installed).
"""

from __future__ import annotations

import errno
import http.cookiejar
import os
import re
import socket
import ssl
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from haiper_sync.errors import ConfigError

Backend = Literal["aiohttp", "httpx"]
# A pooled connection unused this long is dropped before a NAT or load balancer silently does.
KEEPALIVE_EXPIRY = 15.0


@dataclass(frozen=True)
class Network:
    """How to reach the API: backend, an explicit proxy, a CA bundle (all optional)."""

    backend: Backend = "aiohttp"
    proxy: str | None = None  # else HTTP(S)_PROXY / ALL_PROXY / NO_PROXY from the environment
    ca_bundle: str | None = None  # else SSL_CERT_FILE / SSL_CERT_DIR, else certifi's bundle

    def __repr__(self) -> str:
        # A proxy URL may carry credentials.
        proxy = redact(self.proxy) if self.proxy else None
        return f"Network(backend={self.backend!r}, proxy={proxy!r}, ca_bundle={self.ca_bundle!r})"


def tls_context(ca_bundle: str | None, environ: Mapping[str, str] = os.environ) -> ssl.SSLContext:
    """The verifying TLS context: ``ca_bundle``, else SSL_CERT_FILE / SSL_CERT_DIR, else certifi.

    The same choice as ``httpx.create_ssl_context(trust_env=True)``, but a file or folder that
    cannot be loaded is a one-line `ConfigError` naming where it came from, not a traceback.
    """
    if ca_bundle:
        return _load_cas(f"the CA bundle {ca_bundle}", cafile=ca_bundle)
    if cafile := environ.get("SSL_CERT_FILE"):
        return _load_cas(f"the CA bundle SSL_CERT_FILE={cafile}", cafile=cafile)
    if capath := environ.get("SSL_CERT_DIR"):
        # OpenSSL reads the folder lazily: a missing one would only show as "unable to get
        # local issuer certificate" on the first request.
        try:
            if not stat.S_ISDIR(os.stat(capath).st_mode):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        except OSError as error:
            raise ConfigError(
                f"cannot load the CA folder SSL_CERT_DIR={capath}: {_load_reason(error)}"
            ) from None
        return _load_cas(f"the CA folder SSL_CERT_DIR={capath}", capath=capath)
    return httpx.create_ssl_context(trust_env=False)  # certifi's bundle


def _load_cas(what: str, *, cafile: str | None = None, capath: str | None = None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"cannot load {what}: {_load_reason(error)}") from None


_SSL_NOISE = re.compile(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$")


def _load_reason(error: OSError) -> str:
    """``No such file or directory``, ``no certificate or crl found``: the OS or SSL words."""
    if isinstance(error, ssl.SSLError):
        return _SSL_NOISE.sub("", str(error.strerror or error)) or "not a PEM CA bundle"
    return error.strerror or str(error)


class _EmptyJar(http.cookiejar.CookieJar):
    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        pass


class NoCookies(httpx.Cookies):
    """A cookie store that keeps nothing: the API authenticates with its bearer token alone."""

    def __init__(self) -> None:
        super().__init__(_EmptyJar())

    def extract_cookies(self, response: httpx.Response) -> None:
        """Keep none of the response's cookies (without reading them)."""


class _ApiClient(httpx.AsyncClient):
    """httpx's client without cookies.

    The API authenticates with its bearer token alone, and media links carry their signature:
    a CDN's cookies (bot scores, sticky sessions) would only be stored to be sent back, and
    reading them costs a tenth of the client's CPU per request (docs/performance.md): httpx
    builds a `urllib` request for `http.cookiejar` on every response, with or without
    ``Set-Cookie``.
    """

    _no_cookies = NoCookies()  # keeps nothing, so one serves every client

    @property
    def cookies(self) -> httpx.Cookies:
        """No cookies, whatever the API's CDN sets."""
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise TypeError("the API client keeps no cookies")


class _AiohttpTransport(AiohttpTransport):
    """aiohttp's connection pool, without aiohttp's own cookie jar."""

    def get_client(self) -> aiohttp.ClientSession:
        """The session ``httpx-aiohttp`` builds, on the same connector, keeping no cookies."""
        session = super().get_client()
        connector = session.connector
        session.detach()  # the connector stays open, for the new session
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


class _AiohttpClient(_ApiClient):
    """httpx's client on aiohttp, also for proxied routes (SOCKS goes to httpx's transport)."""

    def _init_transport(  # type: ignore[override]
        self, transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any
    ) -> httpx.AsyncBaseTransport:
        return transport or _AiohttpTransport(**kwargs)

    def _init_proxy_transport(  # type: ignore[override]
        self, proxy: httpx.Proxy, **kwargs: Any
    ) -> httpx.AsyncBaseTransport:
        # aiohttp speaks only to HTTP proxies.
        if proxy.url.scheme.startswith("socks"):
            return httpx.AsyncHTTPTransport(proxy=proxy, **kwargs)
        return _AiohttpTransport(proxy=proxy, **kwargs)


def build_http_client(
    network: Network,
    *,
    connections: int,
    connect_timeout: float,
    read_timeout: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for the API; ``transport`` replaces the network (tests)."""
    options: dict[str, Any] = {
        # Redirects are never followed: the bearer token must not travel to another host.
        "follow_redirects": False,
        "timeout": httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
        ),
    }
    if transport is not None:
        return _ApiClient(transport=transport, **options)
    options |= {
        "trust_env": True,
        "proxy": network.proxy or None,
        "verify": tls_context(network.ca_bundle),
        "limits": httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=KEEPALIVE_EXPIRY,
        ),
    }
    try:
        if network.backend == "httpx":
            return _ApiClient(**options)
        return _AiohttpClient(**options)
    except (ValueError, ImportError) as error:
        # E.g. a proxy URL with an unknown scheme, or SOCKS without socksio installed.
        raise ConfigError(f"unusable proxy setting: {redact(str(error))}") from None


_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact(text: str) -> str:
    """``text`` with any ``user:password@`` of a URL removed."""
    return _CREDENTIALS.sub("***@", text)


_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset by peer",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network is unreachable",
    errno.ETIMEDOUT: "connection timed out",
}


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _os_error_text(error: OSError) -> str | None:
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = error.verify_message or error.reason or "certificate verify failed"
        return f"TLS certificate verify failed: {reason}"
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error.reason or error.strerror or error}"
    if isinstance(error, socket.gaierror):
        return f"DNS lookup failed: {error.strerror or error}"
    if error.errno in _ERRNO_WORDS:
        return _ERRNO_WORDS[error.errno]
    if error.strerror:
        return str(error.strerror)
    return None


def describe(error: BaseException) -> str:
    """One line saying why an exchange failed, from the deepest cause that says something.

    The cause chain of an httpx (or aiohttp) error holds the OS or TLS error that tells a user
    what to fix: refused, DNS, an unknown CA behind a TLS-inspecting proxy. Only texts are
    read: no request, header or exception object is kept, so the token cannot leak.
    """
    chain = _chain(error)
    for cause in reversed(chain):
        if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
            text = _os_error_text(cause)
            if text:
                return redact(text)
    detail = _first_text(chain)
    # Only a TimeoutError proves time ran out: httpx-aiohttp maps every aiohttp connection
    # error, a refused one too, to httpx.ConnectTimeout.
    if any(isinstance(c, TimeoutError) for c in chain):
        return redact(f"timed out ({detail})" if detail else "timed out")
    if any(isinstance(c, httpx.DecodingError) for c in chain):
        return redact(f"undecodable body ({detail})")
    return redact(f"{type(error).__name__}: {detail}" if detail else type(error).__name__)


def _first_text(chain: list[BaseException]) -> str:
    for cause in reversed(chain):
        text = str(cause).strip()
        if text:
            return text.splitlines()[0][:300]
    return ""
