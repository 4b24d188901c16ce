"""Deterministic fake Haiper data: every value is derived from sha256 of the creation ID."""

from __future__ import annotations

import functools
import hashlib
import hmac
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from haiper_sync.statuses import TERMINAL_STATUSES

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

# Prefix -> HTTP status the simulator answers on both endpoints.
ERROR_PREFIXES: dict[str, int] = {"nf-": 404, "forbidden-": 403, "badreq-": 400}

# Both forms on purpose: the seed types `code` as an integer, Haiper's table uses strings.
_ERROR_CODES: dict[int, str | int] = {
    400: 400,
    401: 401,
    403: "H-10002002",
    404: "H-10002003",
    429: 429,
    500: 500,
}

_EPOCH_END = datetime(2026, 11, 1, tzinfo=UTC)
_SPAN_SECONDS = 30 * 24 * 3600
_HOST = "https://cdn.haiper-sim.example"

_USERNAMES = (
    "aurora",
    "bytewave",
    "cinder",
    "dune_rider",
    "echo",
    "fable",
    "glimmer",
    "harbor",
    "iris",
    "juniper",
    "kestrel",
    "lumen",
    "marlow",
    "nova",
    "orchid",
    "pixelpine",
    "quill",
    "rook",
    "sable",
    "tundra",
)
_ADJECTIVES = ("golden", "misty", "neon", "ancient", "tiny", "giant", "serene", "stormy")
_SUBJECTS = ("fox", "robot", "lighthouse", "dragon", "astronaut", "koi fish", "city", "owl")
_ACTIONS = ("walking", "glowing", "dancing", "flying", "sleeping", "spinning", "melting", "rising")
_PLACES = (
    "through a forest",
    "over the ocean",
    "in a snowy valley",
    "on the moon",
    "under city lights",
    "in a desert",
    "inside a cathedral",
    "above the clouds",
)
_STYLES = ("cinematic", "watercolor", "35mm film", "anime", "photorealistic", "claymation")
_NEGATIVES = ("blurry, low quality", "text, watermark", "extra limbs", "distorted faces")
_TYPES = (  # (type, input_type, output_type, weight in %)
    ("text2video", "text", "video", 50),
    ("image2video", "image", "video", 30),
    ("text2image", "text", "image", 20),
)
_SIZES = ((1280, 720), (720, 1280), (1024, 1024))


def _digest(creation_id: str, salt: str) -> bytes:
    return hashlib.sha256(f"{salt}:{creation_id}".encode()).digest()


def _unit(creation_id: str, salt: str) -> float:
    """A uniform float in [0, 1) drawn from the ID; the salt makes draws independent."""
    return int.from_bytes(_digest(creation_id, salt)[:8], "big") / 2**64


def _pick(seq: tuple[Any, ...], creation_id: str, salt: str) -> Any:
    return seq[int(_unit(creation_id, salt) * len(seq))]


def _hex(creation_id: str, salt: str, n: int = 24) -> str:
    return _digest(creation_id, salt).hex()[:n]


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def generate_ids(n: int, seed: int = 0) -> list[str]:
    """Return n distinct 24-char lowercase hex IDs derived from sha256(f"{seed}:{i}")."""
    ids: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(ids) < n:
        cid = hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:24]
        i += 1
        if cid not in seen:  # a 96-bit collision is astronomically unlikely, but stay exact
            seen.add(cid)
            ids.append(cid)
    return ids


def is_terminal(status: str) -> bool:
    """True for statuses that never change again (`succeed`, `failed`)."""
    return status in TERMINAL_STATUSES


def is_valid_id(creation_id: str) -> bool:
    """True if the ID uses only the safe charset [A-Za-z0-9_-] (1-128 chars)."""
    return ID_PATTERN.fullmatch(creation_id) is not None


def forced_http_error(creation_id: str) -> int | None:
    """HTTP status forced by the ID's prefix (nf- 404, forbidden- 403, badreq- 400), else None."""
    for prefix, code in ERROR_PREFIXES.items():
        if creation_id.startswith(prefix):
            return code
    return None


def error_body(http_status: int, message: str) -> dict[str, Any]:
    """The error JSON for an HTTP status: `code` is a string for 403/404, an integer otherwise."""
    return {"code": _ERROR_CODES.get(http_status, http_status), "message": message, "details": []}


def _base_status(creation_id: str) -> str:
    u = _unit(creation_id, "status")
    if u < 0.80:
        return "succeed"
    if u < 0.88:
        return "failed"
    if u < 0.92:
        return "pending"
    if u < 0.96:
        return "processing"
    return "post_processing"


def creation_status(creation_id: str, epoch: int = 0) -> dict[str, Any]:
    """The `value` of the status endpoint for an ID at a simulated point in time (epoch)."""
    status = _base_status(creation_id)
    if not is_terminal(status):
        # One independent coin per epoch step: once a step finishes the job it stays finished,
        # so the status is monotonic in epoch.
        for step in range(1, epoch + 1):
            if _unit(creation_id, f"epoch:{step}") < 0.5:
                status = "succeed"
                break
    value: dict[str, Any] = {"status": status}
    if status == "succeed":
        value["progress"] = 1.0
    elif status == "pending":
        value["progress"] = 0.0
    elif status == "processing":
        value["progress"] = round(0.05 + 0.9 * _unit(creation_id, "progress"), 2)
    elif status == "post_processing":
        value["progress"] = round(0.90 + 0.09 * _unit(creation_id, "progress"), 2)
    return value


def _signed(path: str, creation_id: str, expires: int, media: MediaLinks | None = None) -> str:
    if media is not None:
        return f"{media.base}/{path}?Expires={expires}&Signature={media_signature(path, expires)}"
    sig = hashlib.sha256(f"sig:{path}:{creation_id}".encode()).hexdigest()[:32]
    return f"{_HOST}/{path}?Expires={expires}&Signature={sig}"


# ---- media files the simulator serves itself (`SimulatorConfig.media_ttl`) -------------------

MEDIA_PREFIX = "/media/"
_MEDIA_SECRET = b"haiper-sim-media"
# Bytes repeat with this period: cheap to serve at any offset, and not a power of two, so a
# misplaced chunk of any usual size changes the file's sha256.
_PERIOD = 1024 * 1024 + 4099
_CONTENT_TYPES = {"mp4": "video/mp4", "png": "image/png", "jpg": "image/jpeg"}


@dataclass(frozen=True)
class MediaLinks:
    """Signed links to this simulator's own ``/media/`` route, valid until ``expires``."""

    base: str  # e.g. http://127.0.0.1:8765/media
    expires: int


def media_signature(path: str, expires: int) -> str:
    """The signature a served media link must carry (a keyed hash of path and expiry)."""
    return hmac.new(_MEDIA_SECRET, f"{path}:{expires}".encode(), "sha256").hexdigest()[:32]


def media_size(path: str, scale: float = 1.0) -> int:
    """The size of a served file, from its path: thumbnails and covers a few KB, media more;
    times ``scale`` (`SimulatorConfig.media_scale`), at least 1 byte."""
    u = _unit(path, "media_size")
    if path.endswith(("_thumb.jpg", "cover.jpg")):
        size = 4_096 + int(u * 60_000)
    elif path.endswith(".png"):
        size = 64_000 + int(u * 900_000)
    else:
        size = 256_000 + int(u * 2_800_000)
    return size if scale == 1.0 else max(1, int(size * scale))


def media_content_type(path: str) -> str:
    """The Content-Type the simulator sends for a media path."""
    return _CONTENT_TYPES.get(path.rsplit(".", 1)[-1], "application/octet-stream")


@functools.lru_cache(maxsize=64)
def _pattern(path: str) -> bytes:
    return random.Random(f"media:{path}").randbytes(_PERIOD)


def media_bytes(path: str, start: int, end: int) -> bytes:
    """Bytes ``start`` to ``end`` (exclusive) of the file at ``path``: the same on every call."""
    pattern = _pattern(path)
    out = bytearray()
    offset = start
    while offset < end:
        at = offset % _PERIOD
        piece = pattern[at : at + (end - offset)]
        out += piece
        offset += len(piece)
    return bytes(out)


def media_sha256(path: str, size: int | None = None) -> str:
    """The sha256 of the whole file at ``path`` (``size`` bytes, else `media_size`)."""
    total = media_size(path) if size is None else size
    digest = hashlib.sha256()
    step = 4 * 1024 * 1024
    for start in range(0, total, step):
        digest.update(media_bytes(path, start, min(total, start + step)))
    return digest.hexdigest()


def _user(creation_id: str) -> tuple[str, str, str]:
    k = int(_unit(creation_id, "user") * len(_USERNAMES))
    user_id = hashlib.sha256(f"user:{k}".encode()).hexdigest()[:24]
    return user_id, _USERNAMES[k], f"{_HOST}/avatars/{user_id}.png"


def _kind(creation_id: str) -> tuple[str, str, str]:
    roll = _unit(creation_id, "type") * 100
    for type_, input_type, output_type, weight in _TYPES:
        if roll < weight:
            return type_, input_type, output_type
        roll -= weight
    return _TYPES[-1][:3]


def creation_detail(
    creation_id: str, engagement_step: int = 0, media: MediaLinks | None = None
) -> dict[str, Any]:
    """The `value` of the detail endpoint: every field of the seed, deterministic from the ID.

    ``engagement_step`` moves likes and collects on (see `SimulatorConfig.engagement_step`);
    ``media`` points the file links at the simulator's own ``/media/`` route instead of a CDN.
    """
    user_id, username, avatar = _user(creation_id)
    type_, input_type, output_type = _kind(creation_id)
    created = _EPOCH_END - timedelta(
        milliseconds=int(_unit(creation_id, "created") * _SPAN_SECONDS * 1000)
    )
    updated = created + timedelta(
        milliseconds=int((10 + 590 * _unit(creation_id, "updated")) * 1000)
    )
    # URLs are "signed" for a week after the update, like expiring storage links.
    expires = int(updated.timestamp()) + 7 * 24 * 3600 if media is None else media.expires
    ext = "mp4" if output_type == "video" else "png"

    outputs: list[dict[str, Any]] = []
    for k in range(1 + int(_unit(creation_id, "n_outputs") * 4)):
        out_id = _hex(creation_id, f"output:{k}")
        out: dict[str, Any] = {
            "id": out_id,
            "media_url": _signed(
                f"creations/{creation_id}/{out_id}.{ext}", creation_id, expires, media
            ),
        }
        if _unit(creation_id, f"output_thumb:{k}") >= 0.05:
            out["thumbnail_url"] = _signed(
                f"creations/{creation_id}/{out_id}_thumb.jpg", creation_id, expires, media
            )
        outputs.append(out)

    adjective = _pick(_ADJECTIVES, creation_id, "p_adj")
    prompt = (
        f"{'An' if adjective[0] in 'aeiou' else 'A'} {adjective} "
        f"{_pick(_SUBJECTS, creation_id, 'p_subj')} {_pick(_ACTIONS, creation_id, 'p_act')} "
        f"{_pick(_PLACES, creation_id, 'p_place')}, {_pick(_STYLES, creation_id, 'p_style')}"
    )
    width, height = _pick(_SIZES, creation_id, "size")
    value: dict[str, Any] = {
        "creation_id": creation_id,
        "user_id": user_id,
        "username": username,
        "avatar": avatar,
        "type": type_,
        "input_type": input_type,
        "output_type": output_type,
        "prompt": prompt,
        "negative_prompt": _pick(_NEGATIVES, creation_id, "neg"),
        "create_time": _iso(created),
        "update_time": _iso(updated),
        "status": "succeed",
        "video_url": outputs[0]["media_url"],
        "thumbnail_url": _signed(f"creations/{creation_id}/cover.jpg", creation_id, expires, media),
        "settings": {
            "fps": 24 if _unit(creation_id, "fps") < 0.5 else 30,
            "width": width,
            "height": height,
        },
        "commits": {
            # Cubed so most creations have few likes and a handful have many.
            "like_count": int(_unit(creation_id, "likes") ** 3 * 500)
            + engagement_step * int(_unit(creation_id, "like_growth") * 3),
            "is_like": _unit(creation_id, "is_like") < 0.3,
            "collects_count": int(_unit(creation_id, "collects") ** 3 * 100)
            + engagement_step * int(_unit(creation_id, "collect_growth") * 2),
            "is_collect": _unit(creation_id, "is_collect") < 0.1,
        },
        "outputs": outputs,
    }
    neg = _unit(creation_id, "neg_missing")
    if neg < 0.10:
        del value["negative_prompt"]
    elif neg < 0.20:
        value["negative_prompt"] = None
    return value
