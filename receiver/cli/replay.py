"""`callboard replay`: re-deliver events by id or by filter, and watch them complete.

It talks to the database directly, like every command. When no delivery worker has reported in
recently (the server is stopped, or runs `--no-worker`), it delivers by itself until the
replayed deliveries are done. `--no-wait` only enqueues; `--dry-run` only tells.
"""

from __future__ import annotations

import asyncio
import sys
import time

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from receiver.cli.common import json_option, print_json, time_option, with_service
from receiver.exceptions import InvalidRequestError
from receiver.service import Service
from receiver.workers import Workers
from routes import replay
from routes.worker import worker_alive
from storage.records import DLV_FAILED, DLV_PENDING

POLL = 0.25
NO_WORKER = (
    "callboard: no delivery worker is running; the deliveries go when one starts"
    " (callboard serve or callboard worker)"
)
LIVENESS_CHECK = 1.0  # seconds between checks that some worker is still running


async def _pending(svc: Service, ids: list[str]) -> int:
    total = 0
    for start in range(0, len(ids), 500):
        total += await svc.store.count_deliveries(ids[start : start + 500], DLV_PENDING)
    return total


async def _failed(svc: Service, ids: list[str]) -> int:
    total = 0
    for start in range(0, len(ids), 500):
        total += await svc.store.count_deliveries(ids[start : start + 500], DLV_FAILED)
    return total


async def _wait(svc: Service, ids: list[str], *, show: bool) -> None:
    """Until none of `ids` is pending; deliver in-process whenever no worker is running.

    Whether a worker runs is asked again while waiting, not only at the start: a server stopped
    (or killed) meanwhile must not leave the command waiting for ever.
    """
    stop, tasks = asyncio.Event(), list[asyncio.Task[None]]()
    next_check = 0.0
    console = Console(stderr=True)
    try:
        with Progress(
            TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, disable=not show, transient=False,
        ) as progress:  # fmt: skip
            bar = progress.add_task("replay", total=len(ids))
            while True:
                pending = await _pending(svc, ids)
                progress.update(bar, completed=len(ids) - pending)
                if pending == 0:
                    break
                if not tasks and time.monotonic() >= next_check:
                    next_check = time.monotonic() + LIVENESS_CHECK
                    if not await worker_alive(svc.store, time.time()):
                        workers = Workers(svc)
                        tasks = [asyncio.create_task(workers.delivery.run(stop), name="replay-delivery")]
                await asyncio.sleep(POLL)
    finally:
        stop.set()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


@click.command("replay")
@click.argument("event_ids", nargs=-1)
@time_option("--since", "Events created at or after")
@time_option("--until", "Events created before")
@click.option("--type", "event_type", type=click.Choice(["transcript.completed", "transcript.failed"]))
@click.option("--provider", help="Only events of this provider.")
@click.option("--subscription", "subscription_id", help="Only deliveries to this subscription.")
@click.option(
    "--status",
    type=click.Choice(list(replay.STATUSES)),
    default=None,
    help="Which deliveries: failed (default with a filter), all (default with event ids), never-attempted.",
)
@click.option("--dry-run", is_flag=True, help="Print how many and which deliveries would go; send nothing.")
@click.option("--no-wait", is_flag=True, help="Only enqueue; do not wait for the deliveries.")
@json_option
def replay_cmd(
    event_ids: tuple[str, ...], since: float | None, until: float | None, event_type: str | None,
    provider: str | None, subscription_id: str | None, status: str | None, dry_run: bool, no_wait: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Re-deliver EVENT_IDS, or every event matching the filter, with their original webhook-id."""
    req = replay.ReplayRequest(
        event_ids=list(event_ids), since=since, until=until, type=event_type, provider=provider,
        subscription_id=subscription_id, status=status or ("all" if event_ids else "failed"),
    )  # fmt: skip

    async def go(svc: Service) -> dict[str, object]:
        try:
            if dry_run:
                count = 0
                listing = []
                async for batch in replay.plan(svc.store, req):
                    count += len(batch)
                    for event_id, sub_id in batch:
                        if as_json:
                            listing.append({"event_id": event_id, "subscription_id": sub_id})
                        else:
                            click.echo(f"would deliver {event_id} to {sub_id}")
                return {"object": "replay", "dry_run": True, "count": count, "deliveries": listing}
            ids: list[str] = []
            async for batch_ids in replay.enqueue(svc.store, req):
                ids += batch_ids
        except replay.ReplayError as exc:
            raise InvalidRequestError(str(exc)) from None
        result: dict[str, object] = {"object": "replay", "dry_run": False, "count": len(ids)}
        if ids and no_wait and not await worker_alive(svc.store, time.time()):
            click.echo(NO_WORKER, err=True)
        if ids and not no_wait:
            await _wait(svc, ids, show=not as_json and sys.stderr.isatty())
            failed = await _failed(svc, ids)
            result.update(succeeded=len(ids) - failed, failed=failed)
        return result

    result = with_service(go)
    if as_json:
        print_json(result)
    elif dry_run:
        click.echo(f"{result['count']} deliveries would be sent (dry run: nothing sent)")
    elif no_wait or not result["count"]:
        click.echo(f"{result['count']} deliveries enqueued")
    else:
        succeeded, failed = result["succeeded"], result["failed"]
        click.echo(f"{result['count']} deliveries replayed: {succeeded} succeeded, {failed} failed")
    if not dry_run and result.get("failed"):
        sys.exit(1)


def register(group: click.Group) -> None:
    group.add_command(replay_cmd)
