"""`callboard subscriptions add|list|show|remove|enable|disable|rotate-secret`."""

from __future__ import annotations

from typing import Any

import click

from receiver.api.views import subscription_view
from receiver.cli.common import json_option, parse_pairs, print_json, print_table, with_service
from receiver.exceptions import InvalidRequestError, NotFoundError
from receiver.providers import REGISTRY
from receiver.service import Service
from routes import subscriptions as subs
from routes.matching import EVENT_TYPES


def _call(fn: Any) -> dict[str, Any]:
    async def go(svc: Service) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await fn(svc)
            return result
        except subs.SubscriptionNotFoundError as exc:
            raise NotFoundError(f"no subscription {exc.args[0]!r}") from None
        except subs.SubscriptionError as exc:
            raise InvalidRequestError(str(exc)) from None

    return with_service(go)


def _show(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(view)
        return
    for key in ("id", "url", "description", "event_types", "filter", "enabled", "disabled_reason",
                "rotating_until", "created"):  # fmt: skip
        click.echo(f"{key:>16}: {view.get(key)}")
    if "secret" in view:
        click.echo(f"{'secret':>16}: {view['secret']}")
        click.echo("\nKeep the secret now: it is not shown again (rotate-secret makes a new one).")


@click.group("subscriptions")
def subscriptions_group() -> None:
    """Endpoints that receive signed transcript events."""


@subscriptions_group.command("add")
@click.argument("url")
@click.option("--event", "events", multiple=True, type=click.Choice([*EVENT_TYPES, "transcript.*", "*"]),
              help="Event type to send (repeatable; default both).")  # fmt: skip
@click.option("--provider", "providers", multiple=True, type=click.Choice(sorted(REGISTRY)),
              help="Only these providers.")  # fmt: skip
@click.option("--metadata", "metadata", multiple=True, metavar="K=V",
              help="Only transcripts whose metadata has K=V.")  # fmt: skip
@click.option("--description")
@json_option
def add(url: str, events: tuple[str, ...], providers: tuple[str, ...], metadata: tuple[str, ...],
        description: str | None, as_json: bool) -> None:  # fmt: skip
    """Subscribe URL; prints the signing secret once."""
    flt: dict[str, Any] = {}
    if providers:
        flt["provider"] = list(providers)
    if metadata:
        flt["metadata"] = parse_pairs(metadata, what="--metadata", json_values=False)

    async def go(svc: Service) -> dict[str, Any]:
        sub = await subs.create(
            svc.store, url=url, event_types=list(events), filter=flt, description=description,
            allow_private=svc.settings.allow_private_targets, providers=list(REGISTRY),
        )  # fmt: skip
        return subscription_view(sub, secret=True)

    _show(_call(go), as_json)


@subscriptions_group.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """List subscriptions."""

    async def go(svc: Service) -> dict[str, Any]:
        page = await svc.store.list_subscriptions(limit=500)
        data = [subscription_view(s) for s in page.items]
        return {"object": "list", "data": data, "has_more": page.has_more, "next_cursor": page.next_cursor}

    result = _call(go)
    if as_json:
        print_json(result)
        return
    rows = [
        (s["id"], s["url"], ",".join(s["event_types"]),
         "yes" if s["enabled"] else f"no ({s['disabled_reason']})")  # fmt: skip
        for s in result["data"]
    ]
    print_table(None, ["id", "url", "events", "enabled"], rows, empty="no subscriptions")


@subscriptions_group.command("show")
@click.argument("subscription_id")
@json_option
def show(subscription_id: str, as_json: bool) -> None:
    """Show one subscription (never its secret)."""

    async def go(svc: Service) -> dict[str, Any]:
        sub = await svc.store.get_subscription(subscription_id)
        if sub is None:
            raise subs.SubscriptionNotFoundError(subscription_id)
        return subscription_view(sub)

    _show(_call(go), as_json)


@subscriptions_group.command("remove")
@click.argument("subscription_id")
@json_option
def remove(subscription_id: str, as_json: bool) -> None:
    """Delete a subscription (its pending deliveries are cancelled)."""

    async def go(svc: Service) -> dict[str, Any]:
        if not await svc.store.delete_subscription(subscription_id):
            raise subs.SubscriptionNotFoundError(subscription_id)
        return {"id": subscription_id, "object": "subscription", "deleted": True}  # as DELETE answers

    result = _call(go)
    if as_json:
        print_json(result)
    else:
        click.echo(f"removed {subscription_id}")


def _toggle(subscription_id: str, enabled: bool, as_json: bool) -> None:
    async def go(svc: Service) -> dict[str, Any]:
        return subscription_view(await subs.update(svc.store, subscription_id, {"enabled": enabled}))

    view = _call(go)
    if as_json:
        print_json(view)
    else:
        click.echo(f"{subscription_id} {'enabled' if enabled else 'disabled'}")
        if enabled:
            replay = f"callboard replay --subscription {subscription_id} --status never-attempted"
            click.echo(f"to send what it missed: {replay}")


@subscriptions_group.command("enable")
@click.argument("subscription_id")
@json_option
def enable(subscription_id: str, as_json: bool) -> None:
    """Re-enable a subscription."""
    _toggle(subscription_id, True, as_json)


@subscriptions_group.command("disable")
@click.argument("subscription_id")
@json_option
def disable(subscription_id: str, as_json: bool) -> None:
    """Stop sending to a subscription."""
    _toggle(subscription_id, False, as_json)


@subscriptions_group.command("rotate-secret")
@click.argument("subscription_id")
@json_option
def rotate(subscription_id: str, as_json: bool) -> None:
    """Make a new secret; the old one keeps signing for the grace period (CALLBOARD_ROTATION_GRACE)."""

    async def go(svc: Service) -> dict[str, Any]:
        sub = await subs.rotate_secret(svc.store, subscription_id, grace=svc.settings.rotation_grace)
        return subscription_view(sub, secret=True)

    _show(_call(go), as_json)


def register(group: click.Group) -> None:
    group.add_command(subscriptions_group)
