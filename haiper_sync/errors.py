"""One typed error tree for everything the core raises."""

from __future__ import annotations

import signal


class HaiperSyncError(Exception):
    """Base of every error haiper-sync raises on purpose."""


class ConfigError(HaiperSyncError):
    """The run cannot start: a missing key, a bad setting."""


class ManifestError(HaiperSyncError):
    """The manifest cannot be read at all."""


class SchemaError(HaiperSyncError):
    """The file's schema cannot be read or brought up to date."""


class SchemaTooNew(SchemaError, RuntimeError):
    """The file was written by a newer haiper-sync than this one."""


class ForeignDatabase(SchemaError):
    """The file holds someone else's tables and no haiper-sync schema."""


class DatabaseLocked(HaiperSyncError):
    """Another process holds the DuckDB file and did not let go in time."""


class StorageError(HaiperSyncError):
    """The DuckDB file cannot be written or read (read-only, gone, I/O error): the run stops.

    ``path`` is the file the OS refused (the database, its ``.wal``, a folder), ``reason`` the
    OS's words. What committed before stays in the file.
    """

    def __init__(self, message: str, *, path: str, reason: str) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (_storage, (type(self), str(self), self.path, self.reason))


class StorageFull(StorageError):
    """The file system holding the DuckDB file is full (or over quota): the run stops."""


def _storage(cls: type[StorageError], message: str, path: str, reason: str) -> StorageError:
    return cls(message, path=path, reason=reason)


class TooManyErrors(HaiperSyncError):
    """A run ended with more IDs errored than its ``max_error_ratio`` allows."""


class ApiError(HaiperSyncError):
    """Base of errors that come from talking to the API."""


class RequestFailed(ApiError):
    """The API answered with an error status, or the exchange failed."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status_code: int | None = None,
        code: str | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.status_code = status_code
        self.code = code
        self.body = body

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only __init__ defeats the default pickling (Dask ships exceptions).
        return (_rebuild, (type(self), str(self), self.__dict__))


def _rebuild(cls: type[RequestFailed], message: str, state: dict[str, object]) -> RequestFailed:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class RateLimited(RequestFailed):
    """HTTP 429; ``retry_after`` is the server's hint in seconds, if it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class Unauthorized(RequestFailed):
    """HTTP 401: the key is missing or wrong; the whole run must stop."""


class TransportFailed(RequestFailed):
    """No usable HTTP answer: connection error, timeout, truncated or non-JSON body."""


class InvalidResponse(RequestFailed):
    """A 200 whose body is not the JSON document the contract describes (or cannot be decoded)."""


class ResponseTooLarge(InvalidResponse):
    """A body over the size cap: not retried, the same request would bring the same body."""


class BudgetSpent(ApiError):
    """The run's request budget (``--max-requests``) is spent: the request was not sent."""


class ApiUnreachable(ApiError):
    """Requests keep failing with no success (down, DNS, TLS, only 5xx): the run must stop."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url

    def __reduce__(self) -> tuple[object, ...]:
        return (_unreachable, (type(self), str(self), self.url))


class ApiUntrusted(ApiUnreachable):
    """The API's TLS certificate can never verify (unknown CA, expired, wrong host): stop."""


def _unreachable(cls: type[ApiUnreachable], message: str, url: str) -> ApiUnreachable:
    return cls(message, url=url)


class Interrupted(BaseException):
    """A signal (Ctrl-C, SIGTERM) stopped the run; what was committed stays.

    Not an `Exception`, like `KeyboardInterrupt`: no ``except Exception`` on its way out may
    swallow it.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        """The shell's exit code for death by this signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


class MediaError(HaiperSyncError):
    """One media file could not be archived: a ``sync_errors`` row (stage ``media``), run goes on.

    ``transient`` says the next run may well succeed; ``http_status`` is the CDN's answer, if any.
    """

    def __init__(
        self, message: str, *, transient: bool = False, http_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.http_status = http_status

    def __reduce__(self) -> tuple[object, ...]:
        return (_media_error, (type(self), str(self), self.transient, self.http_status))


def _media_error(
    cls: type[MediaError], message: str, transient: bool, http_status: int | None
) -> MediaError:
    return cls(message, transient=transient, http_status=http_status)


class LinkExpired(MediaError):
    """The signed link has expired or the CDN refused it (403/400): a fresh detail may help."""


class ArchiveUnavailable(HaiperSyncError):
    """The archive's destination refuses every write (full disk, missing or refused bucket)."""


class DiskFull(ArchiveUnavailable):
    """The archive's file system has no space left."""
