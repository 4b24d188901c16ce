"""Media archive benchmark: obstore (the archive itself) vs fsspec vs plain aiohttp-to-disk.

    .venv/bin/python bench/media.py [--small 2000] [--large 20] [--single-mb 300]

Files come from the simulator (its own process) on loopback; S3 is moto's server (in this
process). Each candidate runs in a fresh subprocess so its CPU time and peak RSS are its own.
Prints one markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/requests.py would shadow the requests package moto needs.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
SMALL, LARGE = 256 * 1024, 50 * 1024 * 1024
CONCURRENCY = 8


def _links(base: str, small: int, large: int, size_small: int, size_large: int) -> list[str]:
    from haiper_sync.simulator.data import media_signature

    expires = int(time.time()) + 36_000
    out = []
    for i, (n, size) in enumerate(((small, size_small), (large, size_large))):
        for k in range(n):
            path = f"creations/bench{i}/f{k:05d}.mp4"
            sig = media_signature(path, expires)
            out.append(f"{base}/media/{path}?Expires={expires}&Signature={sig}&size={size}")
    return out


def _rss_mb(field: str = "VmRSS") -> float:
    # VmHWM is this process's own peak; ru_maxrss would carry the parent's over exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _prepare_obstore(links: list[str], work: Path) -> None:
    """The database a sync would have left: one output per link (set up before the clock)."""
    import pyarrow as pa

    from haiper_sync.store.connection import open_database

    outputs = pa.table(
        {
            "creation_id": [f"bench{u.split('/bench')[1][0]}" for u in links],
            "output_id": [f"f{i:05d}" for i in range(len(links))],
            "position": [0] * len(links),
            "media_url": links,
        }
    )
    with open_database(work / "bench.duckdb") as con:
        con.register("bench_outputs", outputs)
        con.execute(
            "INSERT INTO creation_outputs (creation_id, output_id, position, media_url) "
            "SELECT * FROM bench_outputs"
        )


async def _run_obstore(links: list[str], target: str, work: Path) -> int:
    from haiper_sync.media import archive_media
    from haiper_sync.settings import Settings

    settings = Settings(media_concurrency=CONCURRENCY)
    summary = await archive_media(work / "bench.duckdb", target, settings=settings)
    assert summary.files_failed == 0, summary
    return summary.bytes_archived


async def _stream(client: object, url: str, sink: object) -> int:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    digest = hashlib.sha256()
    n = 0
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            digest.update(chunk)
            n += len(chunk)
            await sink(chunk)  # type: ignore[operator]
    return n


async def _run_fsspec(links: list[str], target: str, work: Path) -> int:
    import fsspec

    from haiper_sync.api.network import Network
    from haiper_sync.media.transfer import build_media_client

    if target.startswith("s3://"):
        fs = fsspec.filesystem("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    else:
        fs = fsspec.filesystem("file", auto_mkdir=True)
    client = build_media_client(
        Network(), connections=CONCURRENCY, connect_timeout=5, read_timeout=30
    )
    slots = asyncio.Semaphore(CONCURRENCY)
    total = 0

    async def one(i: int, url: str) -> None:
        nonlocal total
        async with slots:
            # fsspec's write API is synchronous (s3fs runs its own loop): writes go to a thread.
            handle = await asyncio.to_thread(fs.open, f"{target}/f{i:05d}.mp4", "wb")

            async def sink(chunk: bytes) -> None:
                await asyncio.to_thread(handle.write, chunk)

            moved = await _stream(client, url, sink)
            total += moved
            await asyncio.to_thread(handle.close)

    await asyncio.gather(*(one(i, u) for i, u in enumerate(links)))
    await client.aclose()
    return total


async def _run_aiohttp(links: list[str], target: str, work: Path) -> int:
    import aiohttp

    root = Path(target)
    root.mkdir(parents=True, exist_ok=True)
    slots = asyncio.Semaphore(CONCURRENCY)
    total = 0
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        async def one(i: int, url: str) -> None:
            nonlocal total
            async with slots, session.get(url) as response:
                response.raise_for_status()
                digest = hashlib.sha256()
                tmp = root / f".f{i:05d}.part"
                with tmp.open("wb") as fh:
                    async for chunk in response.content.iter_chunked(256 * 1024):
                        digest.update(chunk)
                        fh.write(chunk)
                        total += len(chunk)
                tmp.rename(root / f"f{i:05d}.mp4")

        await asyncio.gather(*(one(i, u) for i, u in enumerate(links)))
    return total


RUNNERS = {"obstore": _run_obstore, "fsspec": _run_fsspec, "aiohttp": _run_aiohttp}


def worker(candidate: str, target: str, links_file: str) -> None:
    """One candidate's run; prints a JSON line of its measurements."""
    links = json.loads(Path(links_file).read_text())
    work = Path(tempfile.mkdtemp(prefix="bench-media-"))
    # Libraries load before the baseline: the RSS column is what the transfer itself costs.
    import aiohttp  # noqa: F401
    import duckdb  # noqa: F401
    import fsspec  # noqa: F401
    import httpx  # noqa: F401
    import obstore  # noqa: F401
    import s3fs  # noqa: F401

    import haiper_sync.media  # noqa: F401

    start_rss = _rss_mb()  # before the setup: its memory counts against the archive
    if candidate == "obstore":
        _prepare_obstore(links, work)
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    moved = asyncio.run(RUNNERS[candidate](links, target, work))
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    peak = _rss_mb("VmHWM")
    print(json.dumps({"bytes": moved, "wall": wall, "cpu": cpu, "peak": peak, "base": start_rss}))


def main() -> None:
    """Run every candidate against a local directory and moto's S3; print the table."""
    p = argparse.ArgumentParser()
    p.add_argument("--small", type=int, default=2000)
    p.add_argument("--large", type=int, default=20)
    p.add_argument("--single-mb", type=int, default=300)
    p.add_argument("--worker", nargs=3, metavar=("CANDIDATE", "TARGET", "LINKS"))
    args = p.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    import boto3
    from moto.server import ThreadedMotoServer

    work = Path(tempfile.mkdtemp(prefix="bench-media-"))
    ready = work / "sim.url"
    sim = subprocess.Popen(
        [sys.executable, "-m", "haiper_sync.simulator", "--port", "0", "--media-ttl", "36000",
         "--ready-file", str(ready)],
        cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    # Its request log would bury the table (one line per PUT).
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="bench", aws_secret_access_key="bench")  # fmt: skip
    try:
        while not ready.exists():
            time.sleep(0.05)
        base = ready.read_text().strip()
        jobs = [
            ("small", _links(base, args.small, 0, SMALL, LARGE)),
            ("large", _links(base, 0, args.large, SMALL, LARGE)),
            ("single", _links(base, 0, 1, 0, args.single_mb * 1024 * 1024)),
        ]
        measured: list[tuple[str, str, str, dict[str, float]]] = []
        for label, links in jobs:
            links_file = work / f"{label}.json"
            links_file.write_text(json.dumps(links))
            for candidate, dest in (
                ("obstore", "local"), ("fsspec", "local"), ("aiohttp", "local"),
                ("obstore", "s3"), ("fsspec", "s3"),
            ):  # fmt: skip
                if dest == "s3":
                    bucket = f"bench-{label}-{candidate}"
                    s3.create_bucket(Bucket=bucket)
                    target = f"s3://{bucket}/archive"
                else:
                    target = str(work / f"{label}-{candidate}")
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", candidate, target, str(links_file)],
                    cwd=ROOT, env=env, capture_output=True, text=True, check=True,
                )  # fmt: skip
                m = json.loads(out.stdout.strip().splitlines()[-1])
                measured.append((label, dest, candidate, m))
                print(label, dest, candidate, m, file=sys.stderr, flush=True)
                if dest == "s3":  # moto keeps objects in memory
                    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                        for obj in page.get("Contents", []):
                            s3.delete_object(Bucket=bucket, Key=obj["Key"])
                else:  # the full run writes gigabytes
                    shutil.rmtree(target, ignore_errors=True)
    finally:
        sim.terminate()
        sim.wait(10)
        moto.stop()
    print(
        f"\n{args.small} x 256 KB ('small'); {args.large} x 50 MB ('large'); "
        f"one {args.single_mb} MB file ('single'); {CONCURRENCY} downloads at once.\n"
    )
    print(_table(measured))


def _table(measured: list[tuple[str, str, str, dict[str, float]]]) -> str:
    """The markdown table; "x reference" is the wall time over the aiohttp reference's (the
    same job to a local directory)."""
    reference = {(label, dest): m["wall"] for label, dest, c, m in measured if c == "aiohttp"}
    lines = [
        "| job | to | library | MB | wall s | x reference | MB/s | CPU s/GB | peak RSS MB "
        "| RSS over start MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, dest, candidate, m in measured:
        gb = m["bytes"] / 1e9
        ref = reference.get((label, dest))
        ratio = f"{m['wall'] / ref:.2f}" if ref else "-"
        lines.append(
            f"| {label} | {dest} | {candidate} | {m['bytes'] / 1e6:,.0f} | {m['wall']:,.1f} | "
            f"{ratio} | {m['bytes'] / 1e6 / m['wall']:,.0f} | {m['cpu'] / gb:,.1f} | "
            f"{m['peak']:,.0f} | {m['peak'] - m['base']:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
