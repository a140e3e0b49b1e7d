"""Subscription management: validation, the SSRF check, enabling and secret rotation.

Secrets are `whsec_` + base64 of 32 random bytes and are shown only by the calls that create
them (creation and rotation). During a rotation the previous secret keeps signing beside the new
one until the grace period ends, so consumers can switch without missing a delivery.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from typing import Any

from routes.matching import validate_event_types, validate_filter
from routes.signing import new_secret
from routes.ssrf import TargetNotAllowedError, check_url
from storage.ids import new_id
from storage.records import Subscription
from storage.store import Store

DEFAULT_EVENT_TYPES = ["transcript.completed", "transcript.failed"]
MAX_DESCRIPTION = 500


class SubscriptionError(ValueError):
    """A subscription request that cannot be honoured; the message says why."""


class SubscriptionNotFoundError(LookupError):
    """No subscription has that id."""


def _validated(
    changes: Mapping[str, Any], *, allow_private: bool, providers: Collection[str] | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        if "url" in changes:
            url = changes["url"]
            if not isinstance(url, str):
                raise SubscriptionError("url must be a string")
            check_url(url, allow_private=allow_private)
            out["url"] = url
        if "event_types" in changes:
            types = changes["event_types"]
            out["event_types"] = validate_event_types(types) if types else list(DEFAULT_EVENT_TYPES)
        if "filter" in changes:
            out["filter"] = validate_filter(changes["filter"] or {}, providers=providers)
    except TargetNotAllowedError as exc:
        raise SubscriptionError(f"url: {exc}") from None
    except SubscriptionError:
        raise
    except ValueError as exc:
        raise SubscriptionError(str(exc)) from None
    if "description" in changes:
        description = changes["description"]
        if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
            raise SubscriptionError(f"description must be a string of at most {MAX_DESCRIPTION} characters")
        out["description"] = description
    return out


async def create(
    store: Store,
    *,
    url: str,
    event_types: list[str] | None = None,
    filter: Mapping[str, Any] | None = None,
    description: str | None = None,
    allow_private: bool = False,
    providers: Collection[str] | None = None,
) -> Subscription:
    fields = _validated(
        {"url": url, "event_types": event_types or [], "filter": filter or {}, "description": description},
        allow_private=allow_private,
        providers=providers,
    )
    return await store.create_subscription(
        new_id("sub"),
        url=fields["url"],
        secret=new_secret(),
        event_types=fields["event_types"],
        filter=fields["filter"],
        description=fields["description"],
    )


async def update(
    store: Store,
    sub_id: str,
    changes: Mapping[str, Any],
    *,
    allow_private: bool = False,
    providers: Collection[str] | None = None,
) -> Subscription:
    unknown = set(changes) - {"url", "event_types", "filter", "description", "enabled"}
    if unknown:
        raise SubscriptionError(f"unknown fields: {', '.join(sorted(unknown))}")
    fields = _validated(changes, allow_private=allow_private, providers=providers)
    if "enabled" in changes:
        enabled = changes["enabled"]
        if not isinstance(enabled, bool):
            raise SubscriptionError("enabled must be true or false")
        if enabled:
            fields.update(enabled=True, disabled_reason=None, disabled_at=None, failing_since=None)
        else:
            fields.update(enabled=False, disabled_reason="disabled by an operator", disabled_at=time.time())
    sub = await store.update_subscription(sub_id, **fields) if fields else await store.get_subscription(sub_id)
    if sub is None:
        raise SubscriptionNotFoundError(sub_id)
    return sub


async def rotate_secret(store: Store, sub_id: str, *, grace: float, now: float | None = None) -> Subscription:
    """A new secret; the current one keeps signing beside it for `grace` seconds."""
    sub = await store.get_subscription(sub_id)
    if sub is None:
        raise SubscriptionNotFoundError(sub_id)
    now = time.time() if now is None else now
    updated = await store.update_subscription(
        sub_id,
        secret=new_secret(),
        previous_secret=sub.secret if grace > 0 else None,
        previous_secret_expires_at=now + grace if grace > 0 else None,
    )
    assert updated is not None
    return updated
