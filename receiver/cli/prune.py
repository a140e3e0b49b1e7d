"""`callboard prune --older-than 30d`: delete finished jobs, events, deliveries and callbacks."""

from __future__ import annotations

import time

import click

from receiver.cli.common import json_option, print_json, with_service
from receiver.service import Service
from receiver.timeparse import parse_duration


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("prune")
@click.option("--older-than", "older_than", required=True, callback=_duration, metavar="DURATION",
              help="Age of what to delete: 30d, 12h, 2w.")  # fmt: skip
@json_option
def prune_cmd(older_than: float, as_json: bool) -> None:
    """Delete what finished more than DURATION ago; pending work is never touched."""

    async def go(svc: Service) -> dict[str, int]:
        return await svc.store.prune(time.time() - older_than)

    counts = with_service(go)
    if as_json:
        print_json(counts)
    else:
        click.echo("pruned " + ", ".join(f"{n} {what}" for what, n in counts.items()))


def register(group: click.Group) -> None:
    group.add_command(prune_cmd)
