"""The media archive into real S3 (moto's server on 127.0.0.1), and a kill -9 mid-archive."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import obstore
import pytest
from obstore.store import from_url

from haiper_sync.media import archive_media
from haiper_sync.settings import Settings
from haiper_sync.simulator import SimulatorConfig, SimulatorServer
from haiper_sync.store.connection import open_database
from tests.integration.media_helpers import (
    KEY,
    expected_files,
    local_files,
    seed_database,
    served_path,
    succeeded_ids,
)

pytestmark = pytest.mark.integration
IDS = succeeded_ids(4, seed=23)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A bucket on moto's S3 server; the AWS_* environment points obstore at it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(name, value)
    import boto3

    boto3.client("s3", endpoint_url=f"http://{host}:{port}").create_bucket(Bucket="media-archive")
    try:
        yield "s3://media-archive/haiper"
    finally:
        server.stop()


def _objects(url: str) -> dict[str, tuple[int, str]]:
    store = from_url(url)
    out = {}
    for batch in obstore.list(store):
        for meta in batch:
            body = bytes(obstore.get(store, meta["path"]).bytes())
            out[meta["path"]] = (len(body), hashlib.sha256(body).hexdigest())
    return out


async def _no_sleep(seconds: float) -> None:
    return None


def test_files_land_whole_in_s3_large_ones_by_multipart(s3: str, tmp_path: Path) -> None:
    db = tmp_path / "h.duckdb"
    large = IDS[0]
    sizes_by_creation = {large: 12 * 1024 * 1024}  # over the 5 MiB part size: multipart
    config = SimulatorConfig(
        api_keys=frozenset({KEY}), media_ttl=3600.0, media_sizes=sizes_by_creation
    )
    with SimulatorServer(config) as sim:
        details = seed_database(sim, db, IDS)
        summary = asyncio.run(
            archive_media(db, s3, settings=Settings(media_concurrency=4), sleep=_no_sleep)
        )
        assert sim.stats.media_snapshot()["with_authorization"] == 0
    sizes = {
        served_path(url): 12 * 1024 * 1024
        for o in details[large]["outputs"]
        for url in (o["media_url"], o.get("thumbnail_url"))
        if url
    } | {served_path(details[large]["thumbnail_url"]): 12 * 1024 * 1024}
    want = expected_files(details, sizes)
    assert _objects(s3) == want
    assert summary.files_archived == len(want) and summary.files_failed == 0
    with open_database(db, read_only=True) as con:
        stored = {u for (u,) in con.execute("SELECT stored_url FROM creation_media").fetchall()}
    assert stored == {f"{s3}/{key}" for key in want}


_CHILD = """
import asyncio, sys
from haiper_sync.media import archive_media
from haiper_sync.settings import Settings

def progress(p):
    print(p.bytes_received, flush=True)

asyncio.run(archive_media(sys.argv[1], sys.argv[2], progress=progress,
                          settings=Settings(media_concurrency=2, media_bandwidth=20_000_000)))
"""


def test_a_kill_mid_archive_leaves_no_partial_file_and_a_rerun_completes(tmp_path: Path) -> None:
    creation = IDS[1]
    db, dest = tmp_path / "h.duckdb", tmp_path / "archive"
    calm_db, calm = tmp_path / "calm.duckdb", tmp_path / "calm"
    big = 60 * 1024 * 1024
    config = SimulatorConfig(api_keys=frozenset({KEY}), media_ttl=3600.0)
    with SimulatorServer(config) as sim:
        details = seed_database(sim, db, [creation])
        big_path = served_path(details[creation]["outputs"][0]["media_url"])
        config.media_sizes = {big_path: big}
        seed_database(sim, calm_db, [creation])
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(db), str(dest)],
            cwd=ROOT,
            env=os.environ | {"PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        for line in child.stdout:
            if int(line) > 20 * 1024 * 1024:  # the big file is well under way
                break
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()

        big_key = f"creations/{creation}/{details[creation]['outputs'][0]['id']}.mp4"
        big_key = big_key if big_path.endswith("mp4") else big_key[:-3] + "png"
        partial = local_files(dest) if dest.exists() else {}
        assert big_key not in partial
        want = expected_files(details, {big_path: big})
        assert all(partial[k] == want[k] for k in partial if k in want)

        asyncio.run(archive_media(db, str(dest), sleep=_no_sleep))
        asyncio.run(archive_media(calm_db, str(calm), sleep=_no_sleep))
    # The rerun also swept the stage the killed put left beside the big file's key.
    assert local_files(dest) == local_files(calm) == want
    query = "SELECT output_id, kind, bytes, sha256 FROM creation_media ORDER BY ALL"
    with open_database(db, read_only=True) as con:
        rows = con.execute(query).fetchall()
    with open_database(calm_db, read_only=True) as con:
        assert rows == con.execute(query).fetchall()
