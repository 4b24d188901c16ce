"""Requests spent, the scarce resource: one table from one run against the simulator.

    .venv/bin/python bench/requests.py     (`make bench` runs it after bench/run.py)

Cases:
  backlog   1,000 creations that all succeeded, never seen: status-first vs detail-first
  mix       1,000 generated IDs (the simulator's mix, mostly finished): both strategies
  nights    a manifest of 90% finished, 5% 404s and 5% stuck IDs, synced once, then rerun
            nightly for 10 nights (a day passes between runs: the file's times move back 24 h)
  budget    the mix with --max-requests 250: requests made must be exactly 250
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
KEY = "bench-requests-key"


def main() -> None:
    os.environ["HAIPER_API_KEY"] = KEY
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    import duckdb

    from flows import sync_creations
    from haiper_sync.analyst.render import render
    from haiper_sync.simulator import (
        SimulatorConfig,
        SimulatorServer,
        creation_status,
        generate_ids,
        is_terminal,
    )

    rows: list[list[Any]] = []
    config = SimulatorConfig(api_keys=frozenset({KEY}))
    with (
        tempfile.TemporaryDirectory(prefix="haiper-bench-req-") as tmp,
        SimulatorServer(config) as sim,
    ):
        work = Path(tmp)

        def sync(name: str, ids: list[str], db: Path, **options: Any) -> tuple[int, Any]:
            manifest = work / f"{name}.txt"
            manifest.write_text("\n".join(ids) + "\n")
            sim.stats.reset()
            summary = sync_creations(
                manifest=str(manifest), db_path=str(db), api_url=sim.url, rate_limit=1_000_000,
                concurrency=32, **options,
            )  # fmt: skip
            return int(sim.stats.snapshot()["total"]), summary

        pool = generate_ids(4_000, seed=5)
        status = {i: creation_status(i)["status"] for i in pool}
        succeeded = [i for i in pool if status[i] == "succeed"]
        stuck = [i for i in pool if not is_terminal(status[i])]
        mix = generate_ids(1_000, seed=6)
        mix_succeeded = sum(creation_status(i)["status"] == "succeed" for i in mix)
        for strategy in ("status-first", "detail-first"):
            for case, ids, finished in (
                ("backlog", succeeded[:1_000], 1_000),
                ("mix", mix, mix_succeeded),
            ):
                spent, _ = sync(case, ids, work / f"{case}-{strategy}.duckdb", strategy=strategy)
                rows.append(
                    [case, strategy, len(ids), finished, spent,
                     f"{spent / finished:.2f}", f"{spent / len(ids):.2f}"]
                )  # fmt: skip

        nightly = succeeded[1_000:1_900] + [f"nf-bench-{n}" for n in range(50)] + stuck[:50]
        db = work / "nights.duckdb"
        spent, _ = sync("nights", nightly, db)
        rows.append(["nights", "initial sync", len(nightly), 900, spent, "-", "-"])
        for night in range(1, 11):
            with duckdb.connect(str(db)) as con:  # a day passes
                con.execute(
                    "UPDATE creation_status SET next_check_at = next_check_at - INTERVAL 1 DAY, "
                    "not_found_since = not_found_since - INTERVAL 1 DAY, "
                    "last_checked_at = last_checked_at - INTERVAL 1 DAY"
                )
            spent, summary = sync("nights", nightly, db)
            rows.append(
                [f"night {night}", f"{summary.ids_not_due} not due", len(nightly), "-", spent,
                 "-", f"{spent / len(nightly):.3f}"]
            )  # fmt: skip

        spent, summary = sync("budget", mix, work / "budget.duckdb", max_requests=250)
        rows.append(["budget", "--max-requests 250", len(mix), "-", spent, "-", "-"])
        assert spent == 250 == summary.requests, (spent, summary.requests)

    print(
        render(
            ["case", "strategy / note", "IDs", "succeeded", "requests", "req/succeeded", "req/ID"],
            rows,
            "markdown",
        )
    )


if __name__ == "__main__":
    main()
