"""Planning alone, on the million-ID case: wall time and peak RSS of `plan_run` in a fresh process.

.venv/bin/python bench/plan.py            # 1,000,000 IDs, 990,000 finished in the database
.venv/bin/python bench/plan.py --n 200000
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(db: str, manifest: str) -> None:
    """Plan once in this process and print the figures as JSON."""
    from haiper_sync.store.connection import open_database
    from haiper_sync.store.runs import start_run
    from haiper_sync.sync.plan import plan_run

    with open_database(db) as con:
        start_run(con, "bench", manifest=manifest, refresh=False)
        started = time.monotonic()
        plan = plan_run(
            con,
            manifest,
            run_id="bench",
            refresh=False,
            todo_path=Path(db).with_name("todo.parquet"),
            chunk_size=1_000,
        )
        wall = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": round(wall, 2), "peak_rss_mb": round(peak), "todo": plan.todo}))


def setup(work: Path, n: int) -> None:
    """The bench's million case: a manifest of ``n`` IDs, 99% of them finished in a database."""
    sys.path.insert(0, str(ROOT / "bench"))
    from run import prefill_finished, write_manifest

    from haiper_sync.simulator import generate_ids

    ids = generate_ids(n, seed=2)
    prefill_finished(work / "prefilled.duckdb", ids[: n * 99 // 100])
    write_manifest(work / "ids.txt", ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--setup", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.setup:
        setup(Path(args.setup[0]), int(args.setup[1]))
        return
    with tempfile.TemporaryDirectory(prefix="haiper-plan-") as tmp:
        work = Path(tmp)
        # In its own process: a child's peak RSS starts at its parent's, and this one is large.
        subprocess.run([sys.executable, __file__, "--setup", tmp, str(args.n)], check=True)
        manifest = work / "ids.txt"
        for _ in range(args.runs):
            db = work / "plan.duckdb"
            shutil.copy(work / "prefilled.duckdb", db)
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(db), str(manifest)],
                cwd=ROOT, capture_output=True, text=True, check=True,
            )  # fmt: skip
            print(out.stdout.strip())


if __name__ == "__main__":
    main()
