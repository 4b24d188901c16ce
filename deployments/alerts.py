"""Create the Prefect automation that notifies when a sync run fails (a bad night).

    PREFECT_API_URL=http://127.0.0.1:4200/api .venv/bin/python -m deployments.alerts \\
        --webhook https://hooks.example.com/...

It saves a webhook notification block ``haiper-sync-alerts`` pointing at ``--webhook`` and an
automation ``haiper-sync: a run failed`` that sends it on every ``haiper-sync.run.failed``
event (the API unreachable, the key refused, more errored IDs than ``max_error_ratio``).
Running it again replaces both. Other channels (Slack, e-mail) are other notification blocks
with the same automation: see docs/deployments.md.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from typing import cast
from uuid import UUID

from prefect.automations import Automation, EventTrigger, SendNotification
from prefect.blocks.notifications import CustomWebhookNotificationBlock

BLOCK = "haiper-sync-alerts"
AUTOMATION = "haiper-sync: a run failed"
EVENT = "haiper-sync.run.failed"


def create_alerts(webhook: str, *, allow_private_urls: bool = False) -> UUID:
    """Save the notification block and the automation; return the automation's ID."""
    block = CustomWebhookNotificationBlock(
        name=BLOCK,
        url=webhook,
        method="POST",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
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
            expect={EVENT}, match={"prefect.resource.id": "haiper-sync.database.*"}, threshold=1
        ),
        actions=[
            SendNotification(
                block_document_id=block_id,
                subject="haiper-sync run failed: {{ event.resource['prefect.resource.name'] }}",
                body="{{ event.payload.message }} (run {{ event.payload.run_id }}, "
                "{{ event.payload.ids_errored }} of {{ event.payload.ids_in_manifest }} IDs "
                "errored, {{ event.payload.requests }} requests)",
            )
        ],
    )
    created = cast(Automation, automation.create())
    assert created.id is not None
    return created.id


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags and create the automation."""
    parser = argparse.ArgumentParser(prog="python -m deployments.alerts", description=__doc__)
    parser.add_argument("--webhook", required=True, help="URL that receives a POST per failure")
    parser.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="allow a webhook on a private or loopback address",
    )
    args = parser.parse_args(argv)
    automation_id = create_alerts(args.webhook, allow_private_urls=args.allow_private_urls)
    print(f"automation {AUTOMATION!r} ({automation_id}) notifies {args.webhook} on {EVENT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
