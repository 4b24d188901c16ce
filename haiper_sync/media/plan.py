"""What to archive, in which order, under which key: pure functions of the stored links."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from haiper_sync.api.ids import id_problem
from haiper_sync.errors import MediaError

Kind = Literal["media", "thumbnail", "cover"]
KINDS: tuple[Kind, ...] = ("media", "thumbnail", "cover")
_EXTENSION = re.compile(r"\.([A-Za-z0-9]{1,8})$")
_CONTENT_TYPES = {
    "video/mp4": "mp4",
    "video/webm": "webm",
    "video/quicktime": "mov",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
}
# A link without Expires= sorts after every dated one.
NEVER = 2**63 - 1


@dataclass(frozen=True)
class MediaFile:
    """One file to archive. ``url`` is the signed link: never log or store it, use `source_url`."""

    creation_id: str
    output_id: str | None  # None for the creation's cover
    kind: Kind
    url: str

    @property
    def source_url(self) -> str:
        """The link without its query string (the signature is a credential)."""
        return strip_query(self.url)

    @property
    def expires_at(self) -> int | None:
        """The link's ``Expires=`` epoch seconds, if it has one."""
        return link_expiry(self.url)

    def with_url(self, url: str) -> MediaFile:
        """The same file behind a fresh link."""
        return replace(self, url=url)

    def label(self) -> str:
        """How messages name the file: no link, no signature."""
        return f"{self.kind} of {self.creation_id}" + (
            f"/{self.output_id}" if self.output_id is not None else ""
        )


def strip_query(url: str) -> str:
    """``url`` without query string or fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def link_expiry(url: str) -> int | None:
    """The epoch second in a signed link's ``Expires=`` query parameter, or None."""
    for name, value in parse_qsl(urlsplit(url).query):
        if name.lower() == "expires" and value.isdigit():
            return int(value)
    return None


def is_expired(url: str, now: float) -> bool:
    """True when the link says it has expired by ``now`` (epoch seconds)."""
    expires = link_expiry(url)
    return expires is not None and expires <= now


def in_expiry_order(files: list[MediaFile]) -> list[MediaFile]:
    """Links that expire soonest first; undated ones last; otherwise the given order."""
    return sorted(files, key=lambda f: NEVER if f.expires_at is None else f.expires_at)


def extension(url: str, content_type: str | None) -> str:
    """The file extension for a key: from the URL's path, else the content type, else bin."""
    match = _EXTENSION.search(urlsplit(url).path)
    if match:
        return match.group(1).lower()
    if content_type:
        known = _CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())
        if known:
            return known
    return "bin"


def media_key(file: MediaFile, ext: str) -> str:
    """``creations/{creation_id}/{output_id}[.thumbnail].{ext}`` or ``.../cover.{ext}``.

    IDs reach a key only through the manifest's allowlist: ``..``, ``/`` or control characters
    never become a path. An unsafe ID raises `MediaError` (that file's error).
    """
    problem = id_problem(file.creation_id)
    if problem is not None:
        raise MediaError(f"{file.label()[:80]}: unsafe creation ID ({problem}), not archived")
    if not re.fullmatch(r"[a-z0-9]{1,8}", ext):
        ext = "bin"
    if file.kind == "cover":
        return f"creations/{file.creation_id}/cover.{ext}"
    if file.output_id is None or (problem := id_problem(file.output_id)) is not None:
        raise MediaError(f"{file.label()[:80]}: unsafe output ID ({problem}), not archived")
    suffix = ".thumbnail" if file.kind == "thumbnail" else ""
    return f"creations/{file.creation_id}/{file.output_id}{suffix}.{ext}"


def plan_files(pending: list[tuple[str, str | None, str, str]]) -> list[MediaFile]:
    """The files of ``store.media.media_to_archive`` rows, soonest-expiring link first."""
    files = [
        MediaFile(creation_id, output_id, kind, url)
        for creation_id, output_id, kind, url in pending
        if kind in KINDS
    ]
    return in_expiry_order(files)
