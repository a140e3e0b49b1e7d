"""`callboard events list|show`."""

from __future__ import annotations

import click

from receiver.api.views import event_view
from receiver.cli.common import json_option, print_json, print_table, short_time, time_option, with_service
from receiver.exceptions import NotFoundError
from receiver.service import Service
from storage.records import EventFilter


@click.group("events")
def events_group() -> None:
    """Recorded transcript.completed / transcript.failed events."""


@events_group.command("list")
@click.option("--type", "event_type", type=click.Choice(["transcript.completed", "transcript.failed"]))
@click.option("--provider")
@time_option("--since", "Created at or after")
@time_option("--until", "Created before")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@click.option("--cursor", help="Continue after this event id (from a previous page).")
@json_option
def events_list(
    event_type: str | None, provider: str | None, since: float | None, until: float | None, limit: int,
    cursor: str | None, as_json: bool,
) -> None:  # fmt: skip
    """List events, newest first."""

    async def go(svc: Service) -> tuple[list[dict[str, object]], str | None]:
        page = await svc.store.list_events(EventFilter(event_type, provider, since, until), cursor=cursor, limit=limit)
        return [event_view(e, with_data=as_json) for e in page.items], page.next_cursor

    items, next_cursor = with_service(go)
    if as_json:
        print_json({"object": "list", "data": items, "has_more": next_cursor is not None, "next_cursor": next_cursor})
        return
    rows = [(e["id"], e["type"], e["provider"], e["job_id"], short_time(str(e["created"]))) for e in items]
    print_table(None, ["id", "type", "provider", "job", "created"], rows, empty="no events")
    if next_cursor:
        click.echo(f"more: --cursor {next_cursor}")


@events_group.command("show")
@click.argument("event_id")
@json_option
def events_show(event_id: str, as_json: bool) -> None:
    """Show one event and its transcript."""

    async def go(svc: Service) -> dict[str, object]:
        event = await svc.store.get_event(event_id)
        if event is None:
            raise NotFoundError(f"no event {event_id!r}")
        return event_view(event)

    view = with_service(go)
    if as_json:
        print_json(view)
        return
    for key in ("id", "type", "provider", "job_id", "transcript_id", "created"):
        click.echo(f"{key:>14}: {view.get(key)}")
    data = view.get("data")
    if isinstance(data, dict):
        click.echo(f"\n{data.get('text') or data.get('error')}")


def register(group: click.Group) -> None:
    group.add_command(events_group)
