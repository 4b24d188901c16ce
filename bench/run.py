"""Benchmark: the real flow against the simulator, one fresh process per case.

    .venv/bin/python bench/run.py                 # all cases (what `make bench` runs)
    .venv/bin/python bench/run.py --cases plain --n 2000

Cases:
  plain     N new IDs, simulator latency L, C requests in flight, no rate limit
  20k       the same with 20,000 new IDs
  rerun     the same manifest again on the finished database: must make zero requests
  limited   the simulator enforces R requests/minute with 429s; the flow is set to R
  million   1,000,000-ID manifest of which 990,000 are already finished in the database

Each case runs in its own Python process so CPU time and peak RSS are its own; the
simulator runs in another process, and Prefect's temporary server is started (and timed)
before the sync is timed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"


def start_simulator(work: Path, latency_ms: float, rate_limit: int | None) -> tuple[Any, str]:
    """Run the simulator in its own process; return (process, base URL)."""
    ready = work / f"sim-{time.monotonic_ns()}.url"
    cmd = [sys.executable, "-m", "haiper_sync.simulator", "--port", "0", "--ready-file",
           str(ready), "--api-key", KEY, "--latency-ms", str(latency_ms)]  # fmt: skip
    if rate_limit:
        cmd += ["--rate-limit", str(rate_limit)]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    deadline = time.monotonic() + 30
    while not ready.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("simulator did not start")
        time.sleep(0.05)
    return proc, ready.read_text().strip()


def sim_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_sim/stats") as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def prefill_finished(db: Path, ids: list[str]) -> None:
    """Mark ``ids`` finished (status succeed with a creation row), in bulk."""
    import pyarrow as pa

    from haiper_sync.store import connection

    table = pa.table({"creation_id": ids})
    with connection.open_database(db) as con:
        con.register("finished_ids", table)
        con.execute(
            "INSERT INTO creation_status (creation_id, status, progress, first_seen_at, "
            "last_checked_at, checks) SELECT creation_id, 'succeed', 1.0, now(), now(), 1 "
            "FROM finished_ids"
        )
        con.execute(
            "INSERT INTO creations (creation_id, status, first_synced_at, last_synced_at) "
            "SELECT creation_id, 'succeed', now(), now() FROM finished_ids"
        )


def child(args: argparse.Namespace) -> None:
    """Run one sync in this process and print its measurements as JSON."""
    os.environ["HAIPER_API_KEY"] = KEY
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    t0 = time.monotonic()
    # Prefect's API as `haiper-sync sync` gets it: a temporary server booting while the flows
    # import.
    from cli.runner import prefect_api

    with prefect_api(prepare=lambda: importlib.import_module("flows")):
        prefect_start = time.monotonic() - t0
        _sync(args, prefect_start)


def _sync(args: argparse.Namespace, prefect_start: float) -> None:
    from flows import sync_creations

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t1 = time.monotonic()
    summary = sync_creations(
        manifest=args.manifest,
        db_path=args.db,
        api_url=args.url,
        concurrency=args.concurrency,
        rate_limit=args.rate_limit,
    )
    wall = time.monotonic() - t1
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(
        json.dumps(
            {
                "prefect_start_s": prefect_start,
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_rss_mb": cpu1.ru_maxrss / 1024,
                "requests_flow": summary.requests,
                "succeeded": summary.ids_succeeded,
                "fetched": summary.ids_fetched,
            }
        )
    )


def run_case(
    name: str,
    manifest: Path,
    db: Path,
    url: str,
    concurrency: int,
    rate_limit: int,
    backend: str = "aiohttp",
) -> dict[str, Any]:
    before = sim_stats(url)
    env = os.environ | {"HAIPER_HTTP_BACKEND": backend}
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--manifest", str(manifest), "--db", str(db),
         "--url", url, "--concurrency", str(concurrency), "--rate-limit", str(rate_limit)],
        cwd=ROOT, capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    if out.returncode != 0:
        sys.stderr.write(out.stdout + out.stderr)
        raise SystemExit(f"case {name} failed")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    after = sim_stats(url)
    result["case"] = name
    result["requests"] = after["total"] - before["total"]
    result["http_429"] = after.get("rate_limited", 0) - before.get("rate_limited", 0)
    return result


def write_manifest(path: Path, ids: list[str]) -> Path:
    path.write_text("\n".join(ids) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="plain,rerun,20k,limited,million")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=int, default=500, help="requests/minute, limited case")
    parser.add_argument("--rate-n", type=int, default=700, help="IDs in the limited case")
    parser.add_argument(
        "--backend",
        default="aiohttp",
        choices=["aiohttp", "httpx"],
        help="the transport under httpx.AsyncClient (HAIPER_HTTP_BACKEND)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--rate-limit", type=int, default=1_000_000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from haiper_sync.analyst.render import render
    from haiper_sync.simulator import creation_status, generate_ids, is_terminal

    def case(
        name: str, manifest: Path, db: Path, url: str, rate_limit: int = 1_000_000
    ) -> dict[str, Any]:
        return run_case(name, manifest, db, url, args.concurrency, rate_limit, args.backend)

    cases = args.cases.split(",")
    rows: list[dict[str, Any]] = []
    latency = args.latency_ms / 1000
    rerun_n = 0
    with tempfile.TemporaryDirectory(prefix="haiper-bench-") as tmp:
        work = Path(tmp)
        sim, url = start_simulator(work, args.latency_ms, None)
        try:
            if "plain" in cases or "rerun" in cases:
                ids = generate_ids(args.n, seed=1)
                manifest = write_manifest(work / "plain.txt", ids)
                db = work / "plain.duckdb"
                rows.append(case("plain", manifest, db, url))
                if "rerun" in cases:
                    # A finished manifest: the IDs the first run left in a terminal state.
                    finished = [i for i in ids if is_terminal(creation_status(i)["status"])]
                    rerun = write_manifest(work / "rerun.txt", finished)
                    rows.append(case("rerun", rerun, db, url))
                    rerun_n = len(finished)
            if "20k" in cases:
                ids = generate_ids(20_000, seed=4)
                manifest = write_manifest(work / "20k.txt", ids)
                rows.append(case("20k", manifest, work / "20k.duckdb", url))
            if "million" in cases:
                ids = generate_ids(1_000_000, seed=2)
                db = work / "million.duckdb"
                prefill_finished(db, ids[:990_000])
                manifest = write_manifest(work / "million.txt", ids)
                rows.append(case("million", manifest, db, url))
        finally:
            sim.terminate()
            sim.wait()
        if "limited" in cases:
            sim, url = start_simulator(work, args.latency_ms, args.rate)
            try:
                manifest = write_manifest(work / "limited.txt", generate_ids(args.rate_n, seed=3))
                rows.append(case("limited", manifest, work / "l.duckdb", url, args.rate))
            finally:
                sim.terminate()
                sim.wait()

    table = []
    for r in rows:
        ids = {"plain": args.n, "rerun": rerun_n, "million": 1_000_000, "20k": 20_000,
               "limited": args.rate_n}[r["case"]]  # fmt: skip
        limit = r["requests"] * latency / args.concurrency
        rate = r["requests"] / r["wall_s"] * 60 if r["wall_s"] else 0.0
        table.append(
            [
                r["case"],
                ids,
                r["requests"],
                f"{r['requests'] / ids:.3f}",
                f"{r['prefect_start_s']:.1f}",
                f"{r['wall_s']:.1f}",
                f"{r['cpu_s']:.1f}",
                f"{1000 * r['cpu_s'] / r['requests']:.2f}" if r["requests"] else "-",
                f"{r['peak_rss_mb']:.0f}",
                f"{ids / r['wall_s']:.0f}",
                f"{r['wall_s'] / limit:.2f}" if limit else "-",
                f"{(r['wall_s'] + r['prefect_start_s']) / limit:.2f}" if limit else "-",
                f"{rate:.0f}" + (f" ({rate / args.rate:.2f} R)" if r["case"] == "limited" else ""),
                r["http_429"],
            ]
        )
    print(
        render(
            [
                "case",
                "N",
                "requests",
                "req/ID",
                "prefect start s",
                "wall s",
                "CPU s",
                "CPU ms/req",
                "peak RSS MB",
                "IDs/s",
                "wall/limit",
                "(wall+start)/limit",
                "req/min",
                "429s",
            ],
            table,
            "markdown",
        )
    )
    print(
        f"\nbackend {args.backend}, latency {args.latency_ms:g} ms, "
        f"concurrency {args.concurrency}; limit = "
        "requests x latency / concurrency; wall excludes Prefect's start."
    )


if __name__ == "__main__":
    main()
