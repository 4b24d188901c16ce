"""Create the Prefect automation that notifies when a sync run fails (a bad night).

    PREFECT_API_URL=http://127.0.0.1:4200/api .venv/bin/python -m deployments.alerts \\
        --webhook https://hooks.example.com/...

It saves a webhook notification block `haiper-sync-alerts` pointing at --webhook and an
automation `haiper-sync: a run failed` that sends it on every `haiper-sync.run.failed` event
(the API unreachable, the key refused, more errored IDs than max_error_ratio). The POST names
the DuckDB file's full path, the run's page in the Prefect UI and the one-line reason.
Running it again replaces both. Other channels (Slack, e-mail) are other notification blocks
with the same automation: see docs/deployments.md.

A webhook on a private or loopback address (an internal chat bridge, 127.0.0.1) is refused
unless --allow-private-urls is given: without it, Prefect's server would drop every
notification to it, saying so only in its own log.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections.abc import Sequence
from typing import cast
from uuid import UUID

from prefect.automations import Automation, EventTrigger, SendNotification
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.utilities.urls import validate_restricted_url

from flows.reporting import RESOURCE_PREFIX, run_event

BLOCK = "haiper-sync-alerts"
AUTOMATION = "haiper-sync: a run failed"
EVENT = run_event("failed")
PROG = "python -m deployments.alerts"

# The event payload keys the templates read (flows/reporting.emit_run_event): `message`,
# `run_id`, `ids_errored`, `ids_in_manifest`, `requests`, `db_path` (absolute), `host` and
# `flow_run_url` (the run's page in the Prefect UI).
_PATH = "{{ event.payload.host }}:{{ event.payload.db_path }}"
SUBJECT = "haiper-sync run failed: " + _PATH
BODY = (
    "{{ event.payload.message }}\n"
    "File: " + _PATH + "\n"
    "Run: {% if event.payload.flow_run_url %}{{ event.payload.flow_run_url }}"
    "{% else %}run_id {{ event.payload.run_id }}{% endif %}\n"
    # A run that failed before reading its manifest has no IDs to count: no "0 of 0 errored".
    "{% if event.payload.ids_in_manifest %}{{ event.payload.ids_errored }} of "
    "{{ event.payload.ids_in_manifest }} IDs errored, {% endif %}"
    "{{ event.payload.requests }} requests"
)


def private_address(url: str) -> str | None:
    """Why Prefect's server would refuse ``url`` as private or loopback, or None if it would not.

    Prefect's own check (the one its server runs before sending), on IP literals and every
    address the name resolves to here. A name that does not resolve here is not judged: the
    server may resolve it.
    """
    try:
        validate_restricted_url(url)
    except ValueError as error:
        match = re.search(r"resolves to the private address (\S+?)\.?$", str(error))
        return f"it resolves to the private address {match[1]}" if match else None
    return None


def create_alerts(webhook: str, *, allow_private_urls: bool = False) -> UUID:
    """Save the notification block and the automation; return the automation's ID."""
    block = CustomWebhookNotificationBlock(
        name=BLOCK,
        url=webhook,
        method="POST",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        # Stored with the block and read by the server when it sends: False keeps Prefect's
        # SSRF check on every notification (its default, True, would skip it).
        allow_private_urls=allow_private_urls,
    )
    block_id = block.save(BLOCK, overwrite=True)
    # async_dispatch types these as "maybe a coroutine"; from sync code they are not.
    with contextlib.suppress(ValueError):  # ValueError: none yet
        cast(Automation, Automation.read(name=AUTOMATION)).delete()
    automation = Automation(
        name=AUTOMATION,
        description="A haiper-sync run ended Failed: the API unreachable, the key refused, or "
        "too many IDs errored.",
        trigger=EventTrigger(
            expect={EVENT}, match={"prefect.resource.id": RESOURCE_PREFIX + "*"}, threshold=1
        ),
        actions=[SendNotification(block_document_id=block_id, subject=SUBJECT, body=BODY)],
    )
    created = cast(Automation, automation.create())
    assert created.id is not None
    return created.id


def build_parser() -> argparse.ArgumentParser:
    """The script's flags; the description keeps the docstring's layout (its example)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--webhook", required=True, help="URL that receives a POST per failure")
    parser.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="accept a webhook on a private or loopback address (it must be reachable from "
        "the Prefect server's machine)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, refuse a private webhook unless allowed, and create the automation."""
    args = build_parser().parse_args(argv)
    private = private_address(args.webhook)
    if private and not args.allow_private_urls:
        print(
            f"{PROG}: --webhook {args.webhook} is a private or loopback address ({private}): "
            "Prefect's server would drop its notifications; give --allow-private-urls to "
            "send to it anyway",
            file=sys.stderr,
        )
        return 2
    if private:
        print(
            f"{PROG}: warning: {args.webhook} is a private or loopback address ({private}): "
            "the Prefect server sends the notifications, so it must reach that address from "
            "its own machine; the block is saved with allow_private_urls=True, which is all "
            "Prefect 3.9 needs",
            file=sys.stderr,
        )
    automation_id = create_alerts(args.webhook, allow_private_urls=bool(private))
    print(f"automation {AUTOMATION!r} ({automation_id}) notifies {args.webhook} on {EVENT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
