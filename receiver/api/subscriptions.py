"""`/v1/subscriptions`: where events go. The secret is in the answer to creation and rotation only."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from receiver.api.common import decode_body, json_response, page_response, query_limit, service
from receiver.api.views import subscription_view
from receiver.exceptions import InvalidRequestError, NotFoundError
from receiver.providers import REGISTRY
from routes import subscriptions as subs
from storage.records import Subscription


class SubscriptionRequest(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    event_types: list[str] = msgspec.field(default_factory=list)
    filter: dict[str, Any] = msgspec.field(default_factory=dict)
    description: str | None = None


def _not_found(sub_id: str) -> NotFoundError:
    return NotFoundError(f"no subscription {sub_id!r}")


async def create_subscription(request: Request) -> Response:
    body = await decode_body(request, SubscriptionRequest)
    svc = service(request)
    try:
        sub = await subs.create(
            svc.store,
            url=body.url,
            event_types=body.event_types,
            filter=body.filter,
            description=body.description,
            allow_private=svc.settings.allow_private_targets,
            providers=list(REGISTRY),
        )
    except subs.SubscriptionError as exc:
        raise InvalidRequestError(str(exc)) from None
    return json_response(subscription_view(sub, secret=True), status_code=201)


async def list_subscriptions(request: Request) -> Response:
    page = await service(request).store.list_subscriptions(
        cursor=request.query_params.get("cursor"), limit=query_limit(request, 100)
    )
    return page_response([subscription_view(s) for s in page.items], page.next_cursor)


async def _get(request: Request) -> Subscription:
    sub_id = request.path_params["subscription_id"]
    sub = await service(request).store.get_subscription(sub_id)
    if sub is None:
        raise _not_found(sub_id)
    return sub


async def get_subscription(request: Request) -> Response:
    return json_response(subscription_view(await _get(request)))


async def update_subscription(request: Request) -> Response:
    changes = await decode_body(request, dict[str, Any])
    svc, sub_id = service(request), request.path_params["subscription_id"]
    try:
        sub = await subs.update(
            svc.store, sub_id, changes, allow_private=svc.settings.allow_private_targets, providers=list(REGISTRY)
        )
    except subs.SubscriptionNotFoundError:
        raise _not_found(sub_id) from None
    except subs.SubscriptionError as exc:
        raise InvalidRequestError(str(exc)) from None
    return json_response(subscription_view(sub))


async def delete_subscription(request: Request) -> Response:
    sub_id = request.path_params["subscription_id"]
    if not await service(request).store.delete_subscription(sub_id):
        raise _not_found(sub_id)
    return json_response({"id": sub_id, "object": "subscription", "deleted": True})


async def rotate_secret(request: Request) -> Response:
    svc, sub_id = service(request), request.path_params["subscription_id"]
    try:
        sub = await subs.rotate_secret(svc.store, sub_id, grace=svc.settings.rotation_grace)
    except subs.SubscriptionNotFoundError:
        raise _not_found(sub_id) from None
    return json_response(subscription_view(sub, secret=True))
