"""prefect.yaml, the served deployments, and on one real server (a module fixture): deploy, a
worker, an adhoc run, its progress line, a nightly run, an alert."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import duckdb
import httpx
import jsonschema
import pytest
import yaml
from prefect.flows import Flow, load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema

from deployments.config import PREFECT_YAML, REPO_ROOT, WORK_POOL, load_deployments
from flows.reporting import SUMMARY_KEY
from flows.sync import sync_creations
from haiper_sync.settings import SECRET_BLOCK
from haiper_sync.simulator import creation_status, generate_ids
from tests.support.canned import CannedServer
from tests.support.manifest import write_manifest
from tests.support.wire import Reply

BIN = Path(sys.executable).parent
PULL_STEP: dict[str, dict[str, Any]] = {"deployments.steps.enter_home": {}}
# What each deployment may say; Prefect's loader drops anything else without a word.
DEPLOYMENT_KEYS = {
    "name", "version", "version_type", "tags", "description", "schedule", "schedules", "paused",
    "concurrency_limit", "flow_name", "entrypoint", "parameters", "enforce_parameter_schema",
    "build", "push", "pull", "work_pool", "triggers", "sla",
}  # fmt: skip
TOP_LEVEL_KEYS = {"name", "prefect-version", "build", "push", "pull", "deployments", "definitions"}


def _document() -> dict[str, Any]:
    document = yaml.safe_load(PREFECT_YAML.read_text())
    assert isinstance(document, dict)
    return document


def _deployments() -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in _document()["deployments"]}


# --- prefect.yaml, read as plain YAML ---------------------------------------------------------


def test_prefect_yaml_has_only_keys_prefect_reads() -> None:
    document = _document()
    assert set(document) <= TOP_LEVEL_KEYS
    for deployment in document["deployments"]:
        assert set(deployment) <= DEPLOYMENT_KEYS, deployment["name"]
        assert set(deployment["work_pool"]) <= {"name", "work_queue_name", "job_variables"}
        for schedule in deployment.get("schedules") or []:
            assert set(schedule) <= {"cron", "timezone", "active", "day_or", "parameters", "slug"}


def test_prefect_yaml_declares_the_two_deployments() -> None:
    deployments = _deployments()
    # adhoc-archive (the media archive's flow): tests/unit/media/test_archive_deployment.py
    assert set(deployments) == {"nightly-sync", "adhoc-sync", "adhoc-archive"}
    for deployment in (deployments["nightly-sync"], deployments["adhoc-sync"]):
        # A module of the installed package: it loads wherever a worker runs.
        assert deployment["entrypoint"] == "flows.sync.sync_creations"
        assert deployment["work_pool"]["name"] == WORK_POOL
        assert deployment["concurrency_limit"] == 1
        assert deployment["description"]
        assert "haiper-sync" in deployment["tags"]
        # Only the manifest: the rest comes from the worker's HAIPER_* environment.
        assert deployment["parameters"] == {"manifest": "manifests/*.txt"}

    assert deployments["nightly-sync"]["schedules"] == [
        {"cron": "0 2 * * *", "timezone": "UTC", "active": True}
    ]
    assert not deployments["adhoc-sync"].get("schedules")


def test_prefect_yaml_pull_step_does_not_bake_a_path() -> None:
    document = _document()
    # Present and null: with the keys missing `prefect deploy` offers to configure storage.
    assert "build" in document and document["build"] is None
    assert "push" in document and document["push"] is None
    assert document["pull"] == [PULL_STEP]
    assert all("pull" not in d for d in document["deployments"])


def test_prefect_yaml_never_carries_the_api_key() -> None:
    for deployment in _deployments().values():
        stored = json.dumps([deployment["parameters"], deployment["work_pool"]]).lower()
        assert "api_key" not in stored and "haiper_api_key" not in stored
        assert "secret" not in stored and SECRET_BLOCK not in stored


def test_prefect_yaml_validates_with_prefects_own_model() -> None:
    try:
        from prefect.cli.deploy._models import PrefectYamlModel
    except ImportError:  # private module: its absence must not fail the suite
        pytest.skip("prefect.cli.deploy._models.PrefectYamlModel is gone")
    document = _document()
    model = PrefectYamlModel.model_validate(document)
    assert [d.name for d in model.deployments] == ["nightly-sync", "adhoc-sync", "adhoc-archive"]
    for deployment, raw in zip(model.deployments, document["deployments"], strict=True):
        # Keeps the hand-written key list above honest: every key it allows is one Prefect reads.
        assert set(raw) <= DEPLOYMENT_KEYS <= set(type(deployment).model_fields)
        assert deployment.work_pool is not None and deployment.work_pool.name == WORK_POOL
        assert deployment.concurrency_limit == 1


@pytest.mark.parametrize("name", ["nightly-sync", "adhoc-sync"])
def test_default_parameters_fit_the_flows_schema(name: str) -> None:
    deployment = _deployments()[name]
    flow: Flow[..., Any] = load_flow_from_entrypoint(deployment["entrypoint"])
    schema = parameter_schema(flow).model_dump()
    # The flow has no default manifest: a deployment without one could not run.
    assert "manifest" in schema["required"]
    assert "default" not in schema["properties"]["manifest"]
    jsonschema.validate(deployment["parameters"], schema)
    for out_of_range in ({"concurrency": -1}, {"concurrency": 257}, {"rate_limit": -5}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(deployment["parameters"] | out_of_range, schema)


def test_every_parameter_has_a_type_and_a_description_for_the_ui_form() -> None:
    properties = parameter_schema(sync_creations).model_dump()["properties"]
    assert properties
    for name, spec in properties.items():
        assert spec.get("type"), name
        assert spec.get("description"), name


# --- deployments/ ----------------------------------------------------------------------------


def test_served_deployments_reuse_the_yaml_settings() -> None:
    from deployments.serve import SUFFIX, build

    deployments = _deployments()
    specs = load_deployments()
    assert [s.name for s in specs] == list(deployments)
    for spec in specs:
        served = build(spec)
        raw = deployments[spec.name]
        assert served.name == spec.name + SUFFIX
        assert served.entrypoint == raw["entrypoint"]
        assert served.parameters == raw["parameters"]
        assert served.concurrency_limit == raw["concurrency_limit"]
        assert served.tags == raw["tags"]
        got = [(s.schedule.cron, s.schedule.timezone) for s in served.schedules or []]  # type: ignore[union-attr]
        assert got == [(s["cron"], s["timezone"]) for s in raw.get("schedules") or []]


# --- a real server, the real CLI, a real worker ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Subprocesses in their own sessions, logged to files, stopped newest first."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append((name, proc, log))

    def tail(self, name: str, lines: int = 40) -> str:
        text = (self.logs / f"{name}.log").read_text(errors="replace")
        return f"--- {name}.log ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop_all(self) -> None:
        for _name, proc, log in reversed(self.started):
            # The group: `prefect worker` runs each flow in a child process.
            for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
                if proc.poll() is not None:
                    break
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    continue
            log.close()


def _wait_for(what: str, check: Any, timeout: float, logs: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Deployed:
    """A real Prefect server with both deployments deployed and a worker polling their pool."""

    home: Path  # where the processes run and log, and the runs' files land
    env: dict[str, str]  # the CLI's environment: the server's URL, no HAIPER_* at all
    api_url: str
    key: str  # the simulator's key, known to the worker only
    processes: Processes
    ids: list[str]
    manifest: Path
    started: float

    def run(self, deployment: str, manifest: Path, db: Path) -> str:
        """Start a run of ``deployment`` the way a user does (``prefect deployment run``)."""
        done = subprocess.run(
            [
                *(str(BIN / "prefect"), "deployment", "run", f"sync-creations/{deployment}"),
                *("--param", f"manifest={manifest}", "--param", f"db_path={db}"),
            ],
            env=self.env, cwd=self.home, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """``prefect server start``, the bootstrap (twice), a worker, ``prefect deploy --all``."""
    tmp_path = tmp_path_factory.mktemp("deployed")
    processes = Processes(tmp_path)
    try:
        yield _deploy(tmp_path, processes)
    finally:
        processes.stop_all()


def _deploy(tmp_path: Path, processes: Processes) -> Deployed:
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    key = f"sim-deploy-{uuid.uuid4().hex}"
    # Nothing from the developer's shell or from conftest: no PREFECT_*, no HAIPER_*.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HAIPER_"))}
    env = base | {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",  # saves copying the UI bundle into a fresh home
    }
    started = time.monotonic()
    processes.start(
        "server",
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        tmp_path,
    )
    ready_file = tmp_path / "sim.url"
    processes.start(
        "simulator",
        [
            *(sys.executable, "-m", "haiper_sync.simulator", "--port", "0"),
            *("--ready-file", str(ready_file), "--api-key", key),
        ],
        base,
        tmp_path,
    )
    _wait_for("the Prefect server", lambda: _healthy(api_url), 90, processes.tail("server"))

    bootstrap = [sys.executable, "-m", "deployments.bootstrap"]
    for _ in range(2):  # the second call must find the pool and leave it alone
        subprocess.run(bootstrap, env=env, cwd=REPO_ROOT, check=True, timeout=60)

    # The worker starts as Prefect prints it, in a directory without the code and without
    # HAIPER_SYNC_HOME: the module entrypoint and the pull step find the installed code. Its
    # HAIPER_API_URL and HAIPER_RATE_LIMIT reach the run: the run passes neither parameter.
    sim_url = _wait_for("the simulator", lambda: ready_file.exists() and ready_file.read_text(), 30)
    worker_env = env | {
        "HAIPER_API_KEY": key,
        "HAIPER_API_URL": sim_url.strip(),
        "HAIPER_RATE_LIMIT": "100000",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    processes.start(
        "worker",
        [str(BIN / "prefect"), "worker", "start", "--pool", WORK_POOL],
        worker_env,
        tmp_path,
    )
    deploy = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    ids = generate_ids(30, seed=21)
    return Deployed(
        tmp_path, env, api_url, key, processes, ids, write_manifest(tmp_path, ids), started
    )


@dataclass
class AdhocRun:
    flow_run: Any  # prefect.client.schemas.objects.FlowRun, final
    db: Path


@pytest.fixture(scope="module")
def adhoc_run(deployed: Deployed) -> AdhocRun:
    """One run of the adhoc deployment, started with the CLI and waited for until final."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    db = deployed.home / "deployed.duckdb"
    deployed.run("adhoc-sync", deployed.manifest, db)
    with SyncPrefectClient(deployed.api_url) as client:
        adhoc = client.read_deployment_by_name("sync-creations/adhoc-sync")
        (flow_run,) = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[adhoc.id]))
        )

        def finished() -> Any:
            current = client.read_flow_run(flow_run.id)
            return current if current.state and current.state.is_final() else None

        logs = deployed.processes.tail("worker", 80)
        flow_run = _wait_for("the flow run", finished, 180, logs)
    return AdhocRun(flow_run, db)


@pytest.mark.integration
def test_deploy_stores_the_pull_step_the_pool_and_the_schedules_never_the_key(
    deployed: Deployed,
) -> None:
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(deployed.api_url) as client:
        adhoc = client.read_deployment_by_name("sync-creations/adhoc-sync")
        nightly = client.read_deployment_by_name("sync-creations/nightly-sync")
        pool = client.read_work_pool(WORK_POOL)
    assert pool.type == "process"
    for deployment in (adhoc, nightly):
        assert deployment.work_pool_name == WORK_POOL
        assert deployment.pull_steps == [PULL_STEP], "the deploying machine's path was baked in"
        assert deployment.global_concurrency_limit is not None
        assert deployment.global_concurrency_limit.limit == 1
        stored = json.dumps([deployment.parameters, deployment.job_variables])
        assert deployed.key not in stored
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in nightly.schedules] == [  # type: ignore[union-attr]
        ("0 2 * * *", "UTC", True)
    ]
    assert adhoc.schedules == []


@pytest.mark.integration
def test_an_adhoc_run_completes_on_the_worker_and_writes_the_file(
    deployed: Deployed, adhoc_run: AdhocRun
) -> None:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    flow_run, ids = adhoc_run.flow_run, deployed.ids
    assert flow_run.state is not None and flow_run.state.is_completed(), (
        f"{flow_run.state}\n{deployed.processes.tail('worker', 80)}"
    )
    with SyncPrefectClient(deployed.api_url) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[SUMMARY_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]),
            )
        )

    succeeded = sum(creation_status(i)["status"] == "succeed" for i in ids)
    con = duckdb.connect(str(adhoc_run.db), read_only=True)
    try:
        (creations,) = con.execute("SELECT count(*) FROM creations").fetchone() or (None,)
        (statuses,) = con.execute("SELECT count(*) FROM creation_status").fetchone() or (None,)
    finally:
        con.close()
    assert (creations, statuses) == (succeeded, len(ids))

    assert len(artifacts) == 1
    summary = str(artifacts[0].data)
    assert f"| IDs in manifest | {len(ids)} |" in summary
    assert f"| creations inserted | {succeeded} |" in summary
    assert "| state | completed |" in summary

    assert deployed.key not in json.dumps(flow_run.parameters)
    assert flow_run.parameters["manifest"] == str(deployed.manifest)
    print(f"deploy → worker → completed run: {time.monotonic() - deployed.started:.1f}s")


@pytest.mark.integration
def test_the_runs_progress_line_reads_through_the_api(
    deployed: Deployed, adhoc_run: AdhocRun
) -> None:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    ids, flow_run = deployed.ids, adhoc_run.flow_run
    with SyncPrefectClient(deployed.api_url) as client:
        # Its log, as the UI shows it: the progress line, no per-task success lines.
        run_logs = _wait_for(
            "the run's progress line",
            lambda: [
                log
                for log in client.read_logs(
                    log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id]))
                )
                if log.message.startswith("Progress: ")
            ],
            30,
        )
    assert run_logs[0].message.startswith(f"Progress: {len(ids)} of {len(ids)} IDs (100%)")


@pytest.mark.integration
def test_the_nightly_deployment_runs_on_the_same_worker(deployed: Deployed) -> None:
    from prefect.client.orchestration import SyncPrefectClient

    # Started by hand here.
    started = deployed.run("nightly-sync", deployed.manifest, deployed.home / "nightly.duckdb")
    # Its schedule has made runs for the nights ahead too: this one is the run just started.
    nightly_id = uuid.UUID(started.split("UUID:")[1].split()[0])
    with SyncPrefectClient(deployed.api_url) as client:
        nightly_run = client.read_flow_run(nightly_id)
        nightly_run = _wait_for(
            "the nightly run",
            lambda: (r := client.read_flow_run(nightly_run.id)).state.is_final() and r,  # type: ignore[union-attr]
            180,
            deployed.processes.tail("worker", 80),
        )
        assert nightly_run.state is not None and nightly_run.state.is_completed()


@pytest.mark.integration
def test_a_run_with_too_many_errors_alerts_the_webhook(deployed: Deployed) -> None:
    # A run with too many errored IDs ends Failed, and the automation that deployments.alerts
    # creates notifies a webhook (a local one here).
    home = deployed.home
    with CannedServer(lambda request: Reply(status=204)) as hook:
        subprocess.run(
            [sys.executable, "-m", "deployments.alerts", "--webhook", f"{hook.url}/alert",
             "--allow-private-urls"],
            env=deployed.env, cwd=home, check=True, timeout=60,
        )  # fmt: skip
        bad = write_manifest(home, (f"nf-{n}" for n in range(5)), name="bad.txt")
        deployed.run("adhoc-sync", bad, home / "bad.duckdb")
        posts = _wait_for(
            "the alert", lambda: hook.requests, 120, deployed.processes.tail("server")
        )
    alert = json.loads(posts[0].body)
    assert posts[0].path == "/alert" and "bad.duckdb" in alert["subject"]
    assert "5 of 5 IDs errored" in alert["body"] and "max_error_ratio" in alert["body"]


@pytest.mark.integration
def test_a_cancel_from_prefect_is_recorded_cancelled_and_the_next_run_completes(
    deployed: Deployed,
) -> None:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from haiper_sync.simulator import SimulatorConfig, SimulatorServer

    home = deployed.home
    ids = generate_ids(2_000, seed=24)
    manifest = write_manifest(home, ids, name="cancel.txt")
    db = home / "cancel.duckdb"
    # Slow enough that the run is still fetching when the cancel comes.
    config = SimulatorConfig(api_keys=frozenset({deployed.key}), latency_ms=300)
    with SimulatorServer(config) as slow, SyncPrefectClient(deployed.api_url) as client:

        def start() -> uuid.UUID:
            done = subprocess.run(
                [
                    *(str(BIN / "prefect"), "deployment", "run", "sync-creations/adhoc-sync"),
                    *("--param", f"manifest={manifest}", "--param", f"db_path={db}"),
                    *("--param", f"api_url={slow.url}", "--param", "chunk_size=50"),
                ],
                env=deployed.env, cwd=home, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            return uuid.UUID(done.stdout.split("UUID:")[1].split()[0])

        def final(flow_run_id: uuid.UUID) -> Any:
            current = client.read_flow_run(flow_run_id)
            return current if current.state and current.state.is_final() else None

        first = start()
        _wait_for(
            "the first chunk written",
            lambda: any(
                log.message.startswith("Progress: ")
                for log in client.read_logs(
                    log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[first]))
                )
            ),
            120,
            deployed.processes.tail("worker", 80),
        )
        asked = time.monotonic()
        subprocess.run(
            [str(BIN / "prefect"), "flow-run", "cancel", str(first)],
            env=deployed.env, cwd=home, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        cancelled = _wait_for("the cancel", lambda: final(first), 60)
        took = time.monotonic() - asked
        assert cancelled.state.is_cancelled(), deployed.processes.tail("worker", 80)

        con = duckdb.connect(str(db), read_only=True)
        try:
            state, message = con.execute("SELECT state, message FROM sync_runs").fetchone() or (
                "",
                "",
            )
        finally:
            con.close()
        assert state == "cancelled", message
        assert message.startswith("cancelled from Prefect: ") and "IDs written" in message

        second = start()
        again = _wait_for("the next run", lambda: final(second), 180)
        assert again.state.is_completed(), deployed.processes.tail("worker", 80)
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM creation_status").fetchall() == [(len(ids),)]
    finally:
        con.close()
    print(f"cancel → Cancelled in {took:.1f}s")


def test_the_pull_step_starts_runs_in_the_home_the_worker_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deployments import steps

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HAIPER_SYNC_HOME", str(tmp_path / "data"))
    with pytest.raises(NotADirectoryError, match=r"HAIPER_SYNC_HOME=.* is not a directory"):
        steps.enter_home()
    (tmp_path / "data").mkdir()
    assert steps.enter_home() == {"directory": str(tmp_path / "data")}
    assert Path.cwd() == tmp_path / "data"
    monkeypatch.delenv("HAIPER_SYNC_HOME")
    assert steps.enter_home() == {"directory": str(REPO_ROOT)}  # the checkout it runs from
    monkeypatch.setattr(steps, "CHECKOUT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    assert steps.enter_home() == {"directory": str(tmp_path)}  # an installed package: stays
