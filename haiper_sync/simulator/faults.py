"""Fault kinds the simulator can inject, and the pure schema-drift transforms."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

# Kinds that replace the whole HTTP exchange.
TRANSPORT_KINDS = frozenset({"429", "500", "reset", "truncated", "not_json", "empty_body", "slow"})
# Kinds that reshape the detail `value`; on the status endpoint they are no-ops.
DRIFT_KINDS = frozenset(
    {
        "drift_output_object",
        "drift_string_numbers",
        "drift_wrong_types",
        "drift_missing_fields",
        "drift_extra_fields",
        "drift_mismatched_id",
    }
)
FAULT_KINDS = TRANSPORT_KINDS | DRIFT_KINDS
# Kinds a served media file can be given: a 5xx, a reset or a close halfway through the body.
MEDIA_FAULT_KINDS = frozenset({"500", "503", "403", "reset", "truncated"})


def parse_fault(spec: str) -> tuple[str, int | None]:
    """Split "kind" or "kind*N" into (kind, N or None); raise ValueError on unknown kinds."""
    kind, sep, count = spec.partition("*")
    limit: int | None = None
    if sep:
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"bad fault count in {spec!r}: expected kind*N with N >= 1")
        limit = int(count)
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(FAULT_KINDS)}")
    return kind, limit


def parse_media_fault(spec: str) -> tuple[str, int | None]:
    """Like `parse_fault`, for `MEDIA_FAULT_KINDS`."""
    kind, sep, count = spec.partition("*")
    if kind not in MEDIA_FAULT_KINDS:
        raise ValueError(f"unknown media fault {kind!r}; known: {sorted(MEDIA_FAULT_KINDS)}")
    # The count's syntax is the API faults' own.
    return kind, parse_fault("500" + sep + count)[1]


def apply_drift(kind: str, value: dict[str, Any]) -> dict[str, Any]:
    """Return a drifted copy of a detail `value` (the input is not modified)."""
    v = copy.deepcopy(value)
    if kind == "drift_output_object":
        outputs = v.pop("outputs", [])
        v["output"] = outputs[0] if outputs else {}
    elif kind == "drift_string_numbers":
        for key in ("fps", "width", "height"):
            if key in v.get("settings", {}):
                v["settings"][key] = str(v["settings"][key])
        for key in ("like_count", "collects_count"):
            if key in v.get("commits", {}):
                v["commits"][key] = str(v["commits"][key])
    elif kind == "drift_wrong_types":
        settings = v.get("settings", {})
        v["settings"] = ["fast", settings.get("width"), settings.get("height")]
        v["commits"] = f"likes: {v.get('commits', {}).get('like_count', 0)}"
        outputs = v.get("outputs") or [{}]
        v["outputs"] = outputs[0].get("media_url", "")
        v["create_time"] = 1_790_000_000_000  # epoch millis instead of an ISO string
        v["username"] = None
    elif kind == "drift_missing_fields":
        # Keep every other key (creation_id, the first, survives) so half the fields go.
        v = {k: val for i, (k, val) in enumerate(v.items()) if i % 2 == 0}
    elif kind == "drift_extra_fields":
        v["x_unknown_top"] = {"nested": True}
        v["model_version"] = "sim-2.1"
        if isinstance(v.get("settings"), dict):
            v["settings"]["x_motion"] = 0.5
        if isinstance(v.get("commits"), dict):
            v["commits"]["x_share_count"] = 3
        for out in v.get("outputs", []):
            out["x_duration_ms"] = 4000
    elif kind == "drift_mismatched_id":
        cid = str(v.get("creation_id", ""))
        v["creation_id"] = hashlib.sha256(f"other:{cid}".encode()).hexdigest()[:24]
    else:
        raise ValueError(f"not a drift kind: {kind!r}")
    return v
