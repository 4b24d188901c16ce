"""Serve the deployments of ``prefect.yaml`` from this process: no work pool, no worker.

``python -m deployments.serve`` (``make serve``). Schedules, parameters, tags and concurrency
limits come from ``prefect.yaml``, so the nightly cron and its timezone live in one place.

Served deployments are named ``<name>-served`` (``sync-creations/adhoc-sync-served``): a
served deployment that reused a worker deployment's name would keep its work pool, and a
worker would then pick up runs it cannot start. Flow runs start in this process's working
directory, so relative manifest and DuckDB paths resolve there (on a worker they resolve
against ``HAIPER_SYNC_HOME``). Prefect pauses the schedules when this process stops.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from prefect import Flow, serve
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType

from deployments.config import PREFECT_YAML, DeploymentSpec, load_deployments

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

SUFFIX = "-served"


def load_flow(entrypoint: str) -> Flow[..., Any]:
    """Import the flow of a module entrypoint (``flows.sync.sync_creations``)."""
    # Imported by module name (the package is installed), so the served entrypoint does not
    # depend on the directory this process was started from.
    module, _, function = entrypoint.rpartition(".")
    flow = getattr(importlib.import_module(module), function)
    if not isinstance(flow, Flow):
        raise TypeError(f"{entrypoint} is not a Prefect flow")
    return flow


def build(spec: DeploymentSpec) -> RunnerDeployment:
    """A served deployment with the settings of ``spec``, named ``<name>-served``."""
    deployment = load_flow(spec.entrypoint).to_deployment(
        name=spec.name + SUFFIX,
        schedules=[Cron(s.cron, timezone=s.timezone, active=s.active) for s in spec.schedules],
        parameters=spec.parameters,
        description=spec.description,
        tags=spec.tags,
        concurrency_limit=spec.concurrency_limit,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    # async_dispatch types the result as "maybe a coroutine"; from sync code it is not.
    return cast("RunnerDeployment", deployment)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m deployments.serve",
        description="Serve the prefect.yaml deployments without a work pool or worker.",
    )
    parser.add_argument(
        "--name", action="append", help="serve only this prefect.yaml deployment (repeatable)"
    )
    parser.add_argument("--limit", type=int, default=None, help="flow runs at once")
    args = parser.parse_args(argv)
    specs = [s for s in load_deployments(PREFECT_YAML) if not args.name or s.name in args.name]
    if not specs:
        parser.error(f"no deployment named {args.name} in {PREFECT_YAML}")
    serve(*(build(s) for s in specs), limit=args.limit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
