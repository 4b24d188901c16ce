"""Where archived files go: one object-store API (obstore) for directories and buckets alike.

A put is atomic in every store obstore has: a local file is written under a temporary name and
renamed, an S3/GCS/Azure object appears when its (multipart) upload completes; a body that
fails midway aborts the upload. So a final key only ever holds a whole file.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from obstore.store import LocalStore, ObjectStore, from_url

from haiper_sync.errors import ArchiveUnavailable, ConfigError, DiskFull, MediaError

REMOTE_SCHEMES = frozenset({"s3", "s3a", "gs", "az", "abfs", "abfss", "adl", "azure"})
# obstore's multipart part size and the parts in flight per file: bounds memory per download
# (5 MiB is S3's minimum part size).
PART_SIZE = 5 * 1024 * 1024
PARTS_IN_FLIGHT = 2


@dataclass(frozen=True)
class Destination:
    """An opened archive: the store and the URL prefix its keys are reported under."""

    store: ObjectStore
    base: str
    root: Path | None = None  # a local directory's path

    def stored_url(self, key: str) -> str:
        """Where ``key`` is kept, as an analyst would open it."""
        return f"{self.base.rstrip('/')}/{key}"

    def sweep(self, key: str) -> None:
        """Remove what a killed earlier put of ``key`` left beside it (never the key itself).

        obstore stages a local file as ``<key>#<n>``, ``n`` the lowest number free, and renames
        it when whole; a process killed midway leaves the stage behind. So what is left is
        ``#1`` up to the number this put took: a few ``stat`` calls, never a directory listing
        (one folder can hold thousands of files). (Object stores drop aborted uploads by
        lifecycle rule.)
        """
        if self.root is None:
            return
        final = self.root / key
        n = 1
        while True:
            try:
                final.with_name(f"{final.name}#{n}").unlink()
            except FileNotFoundError:
                return
            n += 1


def open_destination(target: str) -> Destination:
    """A directory path or ``file://``, ``s3://``, ``gs://``, ``az://`` URL as a `Destination`.

    Object stores read their credentials and endpoint from the environment (``AWS_*`` incl.
    ``AWS_ENDPOINT_URL``, ``GOOGLE_*``, ``AZURE_*``); an ``http://`` ``AWS_ENDPOINT_URL`` is
    spoken to over plain HTTP (unless ``AWS_ALLOW_HTTP=false``).
    """
    if not target:
        raise ConfigError("no media archive destination given (HAIPER_ARCHIVE_MEDIA)")
    scheme = urlsplit(target).scheme.lower()
    try:
        if scheme in ("", "file") or len(scheme) == 1:  # a path (or a Windows drive letter)
            root = Path(urlsplit(target).path if scheme == "file" else target).resolve()
            return Destination(LocalStore(root, mkdir=True), str(root), root)
        if scheme in REMOTE_SCHEMES:
            return Destination(from_url(target, **_client_options(scheme)), target)
    except (ValueError, OSError) as error:
        raise ConfigError(f"unusable media archive {target!r}: {_first_line(error)}") from None
    except Exception as error:  # obstore's own configuration errors
        raise ConfigError(f"unusable media archive {target!r}: {_first_line(error)}") from None
    raise ConfigError(
        f"unsupported media archive {target!r}: give a directory, s3://, gs:// or az://"
    )


def _client_options(scheme: str) -> dict[str, Any]:
    """Plain HTTP for an S3 endpoint the environment names with ``http://`` (MinIO, moto, a
    LAN gateway): asked for by whoever set it. obstore refuses it unless told, and its own
    ``AWS_ALLOW_HTTP`` still wins when set."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT") or ""
    if (
        scheme in ("s3", "s3a")
        and endpoint.lower().startswith("http://")
        and "AWS_ALLOW_HTTP" not in os.environ
    ):
        return {"client_options": {"allow_http": True}}
    return {}


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


def _obstore_error(name: str) -> type[BaseException] | None:
    import obstore.exceptions as ox

    found: Any = getattr(ox, name, None)
    return found if isinstance(found, type) else None


def store_failure(error: BaseException, label: str, where: str = "") -> BaseException:
    """Our typed error for a failed put: run-stopping when the destination refuses everything.

    A full disk and a missing or refused bucket stop the run (`DiskFull`,
    `ArchiveUnavailable`), naming ``where`` (the destination); anything else fails that one
    file, to be retried next run.
    """
    text = _first_line(error)
    at = f" {where}" if where else ""
    if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or (
        "No space left" in str(error)
    ):
        return DiskFull(
            f"disk full writing the media archive{at}: {text}; free space and run again"
        )
    refused = tuple(
        t
        for t in (_obstore_error("PermissionDeniedError"), _obstore_error("UnauthenticatedError"))
        if t is not None
    )
    if (refused and isinstance(error, refused)) or isinstance(error, PermissionError):
        return ArchiveUnavailable(f"the media archive{at} refused a write: {text}")
    if "NoSuchBucket" in str(error) or "AccessDenied" in str(error):
        return ArchiveUnavailable(f"the media archive{at} refused a write: {text}")
    return MediaError(f"{label}: cannot store it: {text}", transient=True)
