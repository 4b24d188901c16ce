"""The alerts script without a server: private webhooks refused in one line, its help, its
templates rendered the way Prefect's server renders them."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from prefect.events.schemas.events import Event, Resource
from prefect.server.utilities.user_templates import render_user_template_sync

from deployments import alerts


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """The calls that would save the block and the automation (no server in these tests)."""
    calls: list[tuple[str, bool]] = []

    def record(webhook: str, *, allow_private_urls: bool = False) -> Any:
        calls.append((webhook, allow_private_urls))
        return uuid4()

    monkeypatch.setattr(alerts, "create_alerts", record)
    return calls


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8899/x", "http://localhost:8899/x", "http://10.0.0.7/x"]
)
def test_a_private_webhook_is_refused_in_one_line(
    url: str, created: list[tuple[str, bool]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert alerts.main(["--webhook", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-private-urls" in err and url in err
    assert "private address" in err
    assert created == []


def test_allowed_it_is_saved_with_a_warning(
    created: list[tuple[str, bool]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert alerts.main(["--webhook", "http://127.0.0.1:8899/x", "--allow-private-urls"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning" in err and "Prefect server" in err
    assert created == [("http://127.0.0.1:8899/x", True)]


def test_a_public_webhook_keeps_prefects_ssrf_check(created: list[tuple[str, bool]]) -> None:
    assert alerts.main(["--webhook", "https://93.184.215.14/hook", "--allow-private-urls"]) == 0
    assert created == [("https://93.184.215.14/hook", False)]


def test_help_keeps_the_example_on_its_own_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        alerts.main(["--help"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    example = next(n for n, line in enumerate(lines) if "python -m deployments.alerts \\" in line)
    assert lines[example].startswith("    PREFECT_API_URL=")
    assert lines[example + 1].strip() == "--webhook https://hooks.example.com/..."
    assert lines[example + 2] == "" and "--allow-private-urls" in out


def event(**payload: Any) -> Event:
    """A haiper-sync.run.failed event as emit_run_event sends it."""
    return Event(
        event=alerts.EVENT,
        resource=Resource(
            {
                "prefect.resource.id": "haiper-sync.database./data/nightly/haiper.duckdb",
                "prefect.resource.name": "haiper.duckdb",
            }
        ),
        payload={
            "run_id": "r1",
            "message": "the API at https://api.haiper.ai cannot be trusted: TLS certificate "
            "verify failed: certificate has expired",
            "ids_errored": 0,
            "ids_in_manifest": 20,
            "requests": 1,
            **payload,
        },
    )


def render(template: str, e: Event) -> str:
    return render_user_template_sync(template, {"event": e})


def test_the_alert_names_the_full_path_the_run_page_and_the_reason() -> None:
    url = "http://prefect.internal:4200/runs/flow-run/0f0e"
    e = event(db_path="/data/nightly/haiper.duckdb", host="worker-1", flow_run_url=url)
    assert (
        render(alerts.SUBJECT, e) == "haiper-sync run failed: worker-1:/data/nightly/haiper.duckdb"
    )
    body = render(alerts.BODY, e).splitlines()
    assert body == [
        "the API at https://api.haiper.ai cannot be trusted: TLS certificate verify failed: "
        "certificate has expired",
        "File: worker-1:/data/nightly/haiper.duckdb",
        f"Run: {url}",
        "0 of 20 IDs errored, 1 requests",
    ]


def test_a_run_that_failed_before_its_manifest_counts_no_ids() -> None:
    e = event(db_path="/d/h.duckdb", host="h", ids_in_manifest=0, requests=0)
    body = render(alerts.BODY, e)
    assert "0 of 0" not in body and body.endswith("0 requests")
    assert "Run: run_id r1" in body  # a run outside Prefect's UI still names itself
