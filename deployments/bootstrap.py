"""Create the ``haiper-sync`` process work pool unless it already exists.

``python -m deployments.bootstrap`` (``make deploy`` runs it first). Uses ``PREFECT_API_URL``.
"""

from __future__ import annotations

import asyncio
import sys

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.workers.process import ProcessWorker

from deployments.config import WORK_POOL


async def ensure_work_pool(name: str = WORK_POOL) -> bool:
    """Create the process work pool ``name`` if missing; return True if it was created."""
    async with get_client() as client:
        try:
            pool = await client.read_work_pool(name)
        except ObjectNotFound:
            pass
        else:
            if pool.type != "process":
                raise SystemExit(f"work pool {name!r} has type {pool.type!r}, not 'process'")
            return False
        template = ProcessWorker.get_default_base_job_template()
        try:
            await client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template)
            )
        except ObjectAlreadyExists:  # another `make deploy` won the race
            return False
        return True


def main() -> int:
    """Entry point: report what was done."""
    created = asyncio.run(ensure_work_pool())
    print(f"work pool {WORK_POOL!r}: {'created' if created else 'already exists'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
