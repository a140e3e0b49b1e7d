"""`callboard deliveries list|show`."""

from __future__ import annotations

from typing import Any

import click

from receiver.api.views import delivery_view
from receiver.cli.common import json_option, print_json, print_table, short_time, with_service
from receiver.exceptions import NotFoundError
from receiver.service import Service


@click.group("deliveries")
def deliveries_group() -> None:
    """Deliveries of events to subscriptions, and their attempts."""


@deliveries_group.command("list")
@click.option("--event", "event_id", help="Only deliveries of this event.")
@click.option("--subscription", "subscription_id", help="Only deliveries to this subscription.")
@click.option("--status", type=click.Choice(["pending", "succeeded", "failed", "cancelled"]))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@click.option("--cursor", help="Continue after this delivery id (from a previous page).")
@json_option
def list_cmd(event_id: str | None, subscription_id: str | None, status: str | None, limit: int, cursor: str | None,
             as_json: bool) -> None:  # fmt: skip
    """List deliveries, newest first."""

    async def go(svc: Service) -> dict[str, Any]:
        page = await svc.store.list_deliveries(
            event_id=event_id, subscription_id=subscription_id, status=status, cursor=cursor, limit=limit
        )
        return {"object": "list", "data": [delivery_view(d) for d in page.items], "has_more": page.has_more,
                "next_cursor": page.next_cursor}  # fmt: skip

    result = with_service(go)
    if as_json:
        print_json(result)
        return
    rows = [
        (
            d["id"],
            d["event_id"],
            d["subscription_id"],
            d["status"],
            d["attempts"],
            d["last_status_code"] or d["last_error"],
            short_time(d["updated"]),
        )  # fmt: skip
        for d in result["data"]
    ]
    print_table(
        None, ["id", "event", "subscription", "status", "attempts", "last", "updated"], rows, empty="no deliveries"
    )
    if result["next_cursor"]:
        click.echo(f"more: --cursor {result['next_cursor']}")


@deliveries_group.command("show")
@click.argument("delivery_id")
@json_option
def show(delivery_id: str, as_json: bool) -> None:
    """Show a delivery and every attempt at it."""

    async def go(svc: Service) -> dict[str, Any]:
        found = await svc.store.get_delivery(delivery_id)
        if found is None:
            raise NotFoundError(f"no delivery {delivery_id!r}")
        return delivery_view(*found)

    view = with_service(go)
    if as_json:
        print_json(view)
        return
    for key in ("id", "event_id", "subscription_id", "status", "attempts", "next_attempt_at"):
        click.echo(f"{key:>16}: {view.get(key)}")
    rows = [(short_time(a["attempted_at"]), a["status_code"], a["latency_ms"], a["error"], a["trigger"])
            for a in view["attempt_log"]]  # fmt: skip
    print_table("attempts", ["at", "status", "ms", "error", "trigger"], rows, empty="no attempts yet")


def register(group: click.Group) -> None:
    group.add_command(deliveries_group)
