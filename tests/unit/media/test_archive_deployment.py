"""prefect.yaml's media archive: the `adhoc-archive` deployment, and `archive_media` on the
sync deployments (documented, empty by default)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml
from prefect.flows import Flow, load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema

from deployments.config import PREFECT_YAML, WORK_POOL, load_deployments
from flows.archive import archive_creations
from haiper_sync.settings import SECRET_BLOCK


def _deployments() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(PREFECT_YAML.read_text())
    return {d["name"]: d for d in document["deployments"]}


def test_the_archive_deployment_runs_the_archive_flow_on_the_pool() -> None:
    deployment = _deployments()["adhoc-archive"]
    assert deployment["entrypoint"] == "flows.archive.archive_creations"
    assert deployment["work_pool"]["name"] == WORK_POOL
    assert deployment["concurrency_limit"] == 1
    assert deployment["enforce_parameter_schema"] is True
    assert not deployment.get("schedules")
    assert "pull" not in deployment  # the file's one pull step: nothing of this machine baked
    assert "haiper-sync" in deployment["tags"] and "media" in deployment["tags"]
    description = deployment["description"]
    assert "destination" in description and "HAIPER_ARCHIVE_MEDIA" in description
    # Everything from the worker's HAIPER_* unless a run says otherwise; never a key.
    assert deployment["parameters"] == {}
    stored = json.dumps([deployment["parameters"], deployment["work_pool"]]).lower()
    assert "api_key" not in stored and SECRET_BLOCK not in stored


def test_the_archive_deployments_parameters_fit_its_flows_schema() -> None:
    deployment = _deployments()["adhoc-archive"]
    flow: Flow[..., Any] = load_flow_from_entrypoint(deployment["entrypoint"])
    schema = parameter_schema(flow).model_dump()
    assert not schema.get("required")  # runnable from the UI without a form
    jsonschema.validate(deployment["parameters"], schema)
    jsonschema.validate({"destination": "s3://bucket/haiper", "media_concurrency": 4}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"media_concurrency": -1}, schema)
    for name, spec in parameter_schema(archive_creations).model_dump()["properties"].items():
        assert spec.get("type") and spec.get("description"), name


@pytest.mark.parametrize("name", ["nightly-sync", "adhoc-sync"])
def test_the_sync_deployments_archive_only_when_asked(name: str) -> None:
    deployment = _deployments()[name]
    assert "archive_media" not in deployment["parameters"]  # empty by default
    flow: Flow[..., Any] = load_flow_from_entrypoint(deployment["entrypoint"])
    schema = parameter_schema(flow).model_dump()
    assert schema["properties"]["archive_media"]["default"] == ""
    assert "s3://" in schema["properties"]["archive_media"]["description"]
    jsonschema.validate(deployment["parameters"] | {"archive_media": "s3://b/p"}, schema)


def test_the_nightly_deployment_documents_archive_media() -> None:
    assert "archive_media" in _deployments()["nightly-sync"]["description"]
    assert "archive_media:" in PREFECT_YAML.read_text()  # the commented example


def test_the_archive_deployment_can_be_served_too() -> None:
    from deployments.serve import SUFFIX, build

    (spec,) = [s for s in load_deployments() if s.name == "adhoc-archive"]
    served = build(spec)
    assert served.name == "adhoc-archive" + SUFFIX
    assert served.entrypoint == "flows.archive.archive_creations"
    assert served.parameters == {} and served.concurrency_limit == 1
