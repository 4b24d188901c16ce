"""The Haiper API simulator: data rules, and behaviour over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from haiper_sync.simulator import (
    SimulatorConfig,
    SimulatorServer,
    SimulatorStats,
    creation_detail,
    creation_status,
    generate_ids,
    is_terminal,
)
from haiper_sync.simulator.faults import FAULT_KINDS
from tests.support.fakes import FakeClock

KEY = "sim-demo-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
IDS = generate_ids(300, seed=7)
SUCCEED = [i for i in IDS if creation_status(i)["status"] == "succeed"]
UNFINISHED = [i for i in IDS if not is_terminal(creation_status(i)["status"])]
FAILED = [i for i in IDS if creation_status(i)["status"] == "failed"]


def _succeed_id(label: str) -> str:
    """A readable test ID that is `succeed` at epoch 0, so details (and drift) are served."""
    n = 0
    while creation_status(f"{label}-{n}")["status"] != "succeed":
        n += 1
    return f"{label}-{n}"


# Forced faults of the shared server; each test uses its own IDs since hit counts persist.
F = {
    label: _succeed_id(label)
    for label in (
        "f-429", "f-500", "f-reset", "f-trunc", "f-html", "f-empty", "f-twice", "f-detail-only",
        "f-drift-obj", "f-drift-str", "f-drift-types", "f-drift-missing", "f-drift-extra",
        "f-drift-id",
    )
}  # fmt: skip
ID_FAULTS = {
    F["f-429"]: "429",
    F["f-500"]: "500",
    F["f-reset"]: "reset",
    F["f-trunc"]: "truncated",
    F["f-html"]: "not_json",
    F["f-empty"]: "empty_body",
    F["f-twice"]: "500*2",
    f"detail:{F['f-detail-only']}": "500",
    F["f-drift-obj"]: "drift_output_object",
    F["f-drift-str"]: "drift_string_numbers",
    F["f-drift-types"]: "drift_wrong_types",
    F["f-drift-missing"]: "drift_missing_fields",
    F["f-drift-extra"]: "drift_extra_fields",
    F["f-drift-id"]: "drift_mismatched_id",
}


def _parse_iso(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    config = SimulatorConfig(api_keys=frozenset({KEY, "second-key"}), id_faults=dict(ID_FAULTS))
    with SimulatorServer(config) as server:
        yield server


@pytest.fixture
def client(sim: SimulatorServer) -> Iterator[httpx.Client]:
    sim.stats.reset()
    sim.config.epoch = 0
    with httpx.Client(base_url=sim.url, headers=AUTH, timeout=5.0) as c:
        yield c


# ---- data rules (pure functions) -------------------------------------------------------------


def test_generate_ids_are_distinct_hex_and_deterministic() -> None:
    ids = generate_ids(1000, seed=3)
    assert len(set(ids)) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) for i in ids)
    assert ids == generate_ids(1000, seed=3)
    assert ids[:10] != generate_ids(10, seed=4)


def test_status_distribution_is_roughly_as_specified() -> None:
    values = [creation_status(i) for i in generate_ids(2000)]
    share = {k: v / 2000 for k, v in Counter(v["status"] for v in values).items()}
    assert 0.76 < share["succeed"] < 0.84
    assert 0.05 < share["failed"] < 0.11
    for status in ("pending", "processing", "post_processing"):
        assert 0.02 < share[status] < 0.065, status
    for v in values:
        progress = v.get("progress")
        match v["status"]:
            case "succeed":
                assert progress == 1.0
            case "failed":
                assert "progress" not in v
            case "pending":
                assert progress == 0.0
            case "processing":
                assert progress is not None and 0 < progress < 1
                assert round(progress, 2) == progress
            case "post_processing":
                assert progress is not None and 0.9 <= progress < 1


def test_epoch_finishes_some_unfinished_and_never_changes_terminal() -> None:
    ids = generate_ids(2000, seed=1)
    unfinished = [i for i in ids if not is_terminal(creation_status(i)["status"])]
    terminal = [i for i in ids if is_terminal(creation_status(i)["status"])]
    done_at_1 = {i for i in unfinished if creation_status(i, 1)["status"] == "succeed"}
    assert 0.3 < len(done_at_1) / len(unfinished) < 0.7
    for i in unfinished:
        statuses = [creation_status(i, e)["status"] for e in range(6)]
        first_done = statuses.index("succeed") if "succeed" in statuses else 6
        # Monotonic: unchanged until it finishes, then `succeed` forever.
        assert statuses[:first_done] == [statuses[0]] * first_done
        assert all(s == "succeed" for s in statuses[first_done:])
    assert all(creation_status(i, 5) == creation_status(i) for i in terminal)


def test_detail_has_every_seed_field_with_plausible_values() -> None:
    ids = generate_ids(600, seed=2)
    details = [creation_detail(i) for i in ids]
    end = datetime.fromisoformat("2026-11-01T00:00:00+00:00")
    for cid, d in zip(ids, details, strict=True):
        assert d["creation_id"] == cid and d["status"] == "succeed"
        for key in ("user_id", "username", "prompt", "video_url", "thumbnail_url"):
            assert isinstance(d[key], str) and d[key]
        assert d["avatar"].startswith("https://")
        assert (d["type"], d["output_type"]) in {
            ("text2video", "video"),
            ("image2video", "video"),
            ("text2image", "image"),
        }
        assert d["input_type"] == ("image" if d["type"] == "image2video" else "text")
        assert ISO.match(d["create_time"]) and ISO.match(d["update_time"])
        created, updated = _parse_iso(d["create_time"]), _parse_iso(d["update_time"])
        assert end - timedelta(days=30) <= created <= end
        assert 10 <= (updated - created).total_seconds() <= 600
        s = d["settings"]
        assert s["fps"] in (24, 30) and isinstance(s["fps"], int)
        assert (s["width"], s["height"]) in {(1280, 720), (720, 1280), (1024, 1024)}
        c = d["commits"]
        assert isinstance(c["like_count"], int) and isinstance(c["collects_count"], int)
        assert isinstance(c["is_like"], bool) and isinstance(c["is_collect"], bool)
        assert 1 <= len(d["outputs"]) <= 4
        for out in d["outputs"]:
            assert out["id"] and out["media_url"].startswith("https://")
        assert "Signature=" in d["video_url"]
    assert 15 <= len({d["user_id"] for d in details}) <= 20
    assert len({d["prompt"] for d in details}) > 300
    neg_missing = sum(1 for d in details if d.get("negative_prompt") is None)
    assert 0.12 < neg_missing / len(details) < 0.28
    assert any("negative_prompt" not in d for d in details)
    assert any("negative_prompt" in d and d["negative_prompt"] is None for d in details)
    outputs = [o for d in details for o in d["outputs"]]
    no_thumb = sum(1 for o in outputs if "thumbnail_url" not in o)
    assert 0.01 < no_thumb / len(outputs) < 0.10
    assert creation_detail(ids[0]) == creation_detail(ids[0])


def test_config_rejects_unknown_fault_kinds() -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(id_faults={"x": "explode"})
    with pytest.raises(ValueError):
        SimulatorConfig(id_faults={"x": "500*0"})
    with pytest.raises(ValueError):
        SimulatorConfig(p_500=0.7, p_429=0.7)
    assert "reset" in FAULT_KINDS


# ---- over HTTP -----------------------------------------------------------------------------------

integration = pytest.mark.integration


@integration
def test_status_and_detail_match_the_data_functions(client: httpx.Client) -> None:
    for cid in IDS[:40]:
        r = client.get(f"/v1/jobs/{cid}/status")
        assert r.status_code == 200
        assert r.json() == {"status": "success", "value": creation_status(cid)}
    for cid in SUCCEED[:20]:
        r = client.get(f"/v1/creation/{cid}")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"status": "success", "value": creation_detail(cid)}
        assert client.get(f"/v1/creation/{cid}").content == r.content


@integration
def test_auth_is_required(sim: SimulatorServer, client: httpx.Client) -> None:
    cid = SUCCEED[0]
    with httpx.Client(base_url=sim.url) as anon:
        missing = anon.get(f"/v1/jobs/{cid}/status")
        wrong = anon.get(f"/v1/creation/{cid}", headers={"Authorization": "Bearer nope"})
        basic = anon.get(f"/v1/creation/{cid}", headers={"Authorization": f"Basic {KEY}"})
        other = anon.get(f"/v1/creation/{cid}", headers={"Authorization": "Bearer second-key"})
    for r in (missing, wrong, basic):
        assert r.status_code == 401
        assert set(r.json()) == {"code", "message", "details"}
    assert other.status_code == 200


@integration
@pytest.mark.parametrize(
    ("cid", "status", "code"),
    [("nf-1", 404, "H-10002003"), ("forbidden-x", 403, "H-10002002"), ("badreq-y", 400, 400)],
)
def test_error_prefixes_on_both_endpoints(
    client: httpx.Client, cid: str, status: int, code: str | int
) -> None:
    for path in (f"/v1/jobs/{cid}/status", f"/v1/creation/{cid}"):
        r = client.get(path)
        assert r.status_code == status
        body = r.json()
        assert body["code"] == code and body["details"] == [] and body["message"]


@integration
def test_detail_of_unfinished_or_failed_creation_is_400(client: httpx.Client) -> None:
    for cid in (UNFINISHED[0], FAILED[0]):
        r = client.get(f"/v1/creation/{cid}")
        assert r.status_code == 400
        assert r.json()["code"] == 400


@integration
def test_bad_id_and_unknown_paths(client: httpx.Client) -> None:
    r = client.get("/v1/creation/bad%20id")
    assert r.status_code == 400
    r = client.get("/v2/whatever")
    assert r.status_code == 404
    assert r.json()["code"] == "H-10002003"
    assert client.get("/_sim/stats").json()["total"] == 1  # only the bad-id request counts


@integration
def test_epoch_advance_over_http(sim: SimulatorServer, client: httpx.Client) -> None:
    ids = UNFINISHED + IDS[:30]

    def statuses() -> dict[str, str]:
        return {i: client.get(f"/v1/jobs/{i}/status").json()["value"]["status"] for i in ids}

    before = statuses()
    assert client.post("/_sim/epoch/3").json() == {"epoch": 3}
    after = statuses()
    changed = {i for i in ids if before[i] != after[i]}
    assert changed and all(after[i] == "succeed" for i in changed)
    assert all(not is_terminal(before[i]) for i in changed)
    assert all(after[i] == creation_status(i, 3)["status"] for i in ids)
    sim.set_epoch(0)
    assert statuses() == before


@integration
def test_counters_count_and_reset(sim: SimulatorServer, client: httpx.Client) -> None:
    cid = SUCCEED[1]
    client.get(f"/v1/jobs/{cid}/status")
    client.get(f"/v1/jobs/{cid}/status")
    client.get(f"/v1/creation/{cid}")
    client.get("/v1/creation/nf-zzz")
    client.get(f"/v1/creation/{F['f-429']}")
    httpx.get(f"{sim.url}/v1/creation/{cid}")  # no key
    snap = client.get("/_sim/stats").json()
    assert snap["total"] == 6
    assert snap["by_endpoint"] == {"status": 2, "detail": 4}
    assert snap["by_status"] == {"200": 3, "401": 1, "404": 1, "429": 1}
    assert snap["rate_limited"] == 1
    assert snap["per_id"]["status"] == {cid: 2}
    assert snap["per_id"]["detail"][cid] == 2
    assert sim.stats.requests_for("detail", "nf-zzz") == 1
    assert sim.stats.snapshot() == snap
    assert client.post("/_sim/reset").json() == {"ok": True}
    assert client.get("/_sim/stats").json()["total"] == 0


@integration
def test_forced_error_faults(client: httpx.Client) -> None:
    r = client.get(f"/v1/creation/{F['f-429']}")
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert r.json()["code"] == 429
    assert client.get(f"/v1/jobs/{F['f-500']}/status").status_code == 500
    assert client.get(f"/v1/creation/{F['f-500']}").status_code == 500
    r = client.get(f"/v1/creation/{F['f-html']}")
    assert r.status_code == 200 and r.text == "<html>oops</html>"
    r = client.get(f"/v1/creation/{F['f-empty']}")
    assert r.status_code == 200 and r.content == b""


@integration
def test_forced_fault_count_then_normal(client: httpx.Client) -> None:
    codes = [client.get(f"/v1/jobs/{F['f-twice']}/status").status_code for _ in range(4)]
    assert codes == [500, 500, 200, 200]
    # The count is per endpoint: the detail endpoint gets its own two failures.
    assert client.get(f"/v1/creation/{F['f-twice']}").status_code == 500
    assert client.get(f"/v1/jobs/{F['f-detail-only']}/status").status_code == 200
    assert client.get(f"/v1/creation/{F['f-detail-only']}").status_code == 500


@integration
def test_truncated_body_is_not_json(client: httpx.Client) -> None:
    r = client.get(f"/v1/creation/{F['f-trunc']}")
    assert r.status_code == 200
    assert int(r.headers["content-length"]) == len(r.content) > 0
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    full = json.dumps(
        {"status": "success", "value": creation_detail(F["f-trunc"])}, separators=(",", ":")
    )
    assert full.startswith(r.text)


@integration
def test_reset_fault_is_a_transport_error(client: httpx.Client) -> None:
    with pytest.raises(httpx.TransportError):
        client.get(f"/v1/jobs/{F['f-reset']}/status")
    # The pool recovers: the next request opens a fresh connection.
    assert client.get(f"/v1/jobs/{SUCCEED[0]}/status").status_code == 200
    assert client.get("/_sim/stats").json()["connection_resets"] == 1


@integration
def test_schema_drift_faults(client: httpx.Client) -> None:
    for label in ("f-drift-obj", "f-drift-str", "f-drift-types", "f-drift-extra", "f-drift-id"):
        cid = F[label]
        # Drift only reshapes details; the status endpoint stays normal.
        assert client.get(f"/v1/jobs/{cid}/status").json()["value"]["status"] == "succeed"

    def value(cid: str) -> dict[str, Any]:
        r = client.get(f"/v1/creation/{cid}")
        assert r.status_code == 200
        v = r.json()["value"]
        assert isinstance(v, dict)
        return v

    v = value(F["f-drift-obj"])
    assert "outputs" not in v and isinstance(v["output"], dict) and "media_url" in v["output"]
    v = value(F["f-drift-str"])
    assert isinstance(v["settings"]["fps"], str) and v["settings"]["fps"].isdigit()
    assert isinstance(v["commits"]["like_count"], str)
    v = value(F["f-drift-types"])
    assert isinstance(v["settings"], list) and "fast" in v["settings"]
    assert isinstance(v["commits"], str)
    v = value(F["f-drift-missing"])
    full = creation_detail(F["f-drift-missing"])
    assert v["creation_id"] == full["creation_id"]
    assert 0 < len(v) <= (len(full) + 1) // 2 and set(v) < set(full)
    r = client.get(f"/v1/creation/{F['f-drift-extra']}").json()
    assert "request_id" in r and "x_unknown_top" in r["value"]
    assert "x_motion" in r["value"]["settings"]
    v = value(F["f-drift-id"])
    assert v["creation_id"] != F["f-drift-id"]
    assert v["prompt"] == creation_detail(F["f-drift-id"])["prompt"]


@integration
def test_latency_is_added(sim: SimulatorServer, client: httpx.Client) -> None:
    cid = SUCCEED[2]
    client.get(f"/v1/jobs/{cid}/status")  # warm the connection
    sim.config.latency_ms = 20
    try:
        start = time.perf_counter()
        client.get(f"/v1/jobs/{cid}/status")
        assert time.perf_counter() - start >= 0.020
    finally:
        sim.config.latency_ms = 0


@integration
def test_rate_limit_sliding_window_with_fake_clock() -> None:
    clock = FakeClock(1000.0)
    config = SimulatorConfig(
        api_keys=frozenset({KEY, "second-key"}), rate_limit_per_minute=3, clock=clock
    )
    with SimulatorServer(config) as server, httpx.Client(base_url=server.url, headers=AUTH) as c:
        path = f"/v1/jobs/{SUCCEED[0]}/status"
        assert [c.get(path).status_code for _ in range(3)] == [200, 200, 200]
        clock.now += 10
        r = c.get(path)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "50"
        assert r.json()["code"] == 429
        # Another key has its own window.
        other = c.get(path, headers={"Authorization": "Bearer second-key"})
        assert other.status_code == 200
        clock.now += 49.5
        assert c.get(path).headers["retry-after"] == "1"
        clock.now += 0.5  # the first three slots expire together
        assert [c.get(path).status_code for _ in range(4)] == [200, 200, 200, 429]
        assert server.stats.snapshot()["rate_limited"] == 3


@integration
def test_random_faults_are_seeded() -> None:
    def run(seed: int) -> list[int | str]:
        config = SimulatorConfig(fault_seed=seed, p_500=0.3, p_429=0.1, p_reset=0.05)
        out: list[int | str] = []
        with SimulatorServer(config) as server, httpx.Client(base_url=server.url) as c:
            for _ in range(120):
                try:
                    out.append(c.get(f"/v1/jobs/{SUCCEED[0]}/status", headers=AUTH).status_code)
                except httpx.TransportError:
                    out.append("reset")
        return out

    first = run(5)
    assert first == run(5)
    counts = Counter(first)
    assert 20 < counts[500] < 60 and 3 < counts[429] < 25 and counts["reset"] >= 1
    assert counts[200] > 40


def test_stats_object_standalone() -> None:
    stats = SimulatorStats()
    stats.record_request("status", "a")
    stats.record_status(200)
    assert stats.snapshot()["by_status"] == {"200": 1}
    stats.reset()
    assert stats.snapshot()["total"] == 0


@integration
def test_module_entry_point_writes_ready_file(tmp_path: Path) -> None:
    ready = tmp_path / "url"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "haiper_sync.simulator", "--port", "0", "--ready-file", str(ready)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            assert time.monotonic() < deadline, "simulator did not become ready"
            time.sleep(0.02)
        url = ready.read_text()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        r = httpx.get(f"{url}/v1/jobs/{SUCCEED[0]}/status", headers=AUTH)
        assert r.json()["value"] == creation_status(SUCCEED[0])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_banner_shows_the_keys_the_simulator_accepts() -> None:
    proc = subprocess.Popen(
        [*(sys.executable, "-m", "haiper_sync.simulator", "--port", "0"),
         *("--api-key", "k-two", "--api-key", "k-one")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        found = re.fullmatch(
            r"Simulated Haiper API on (http://127\.0\.0\.1:\d+), accepting the keys k-one, k-two\n",
            banner,
        )
        assert found, banner
        answer = httpx.get(
            f"{found[1]}/v1/jobs/x/status", headers={"Authorization": "Bearer k-one"}, timeout=10
        )
        assert answer.status_code != 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)
