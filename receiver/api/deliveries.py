"""`/v1/deliveries`: each (event, subscription) delivery, its state and every attempt."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from receiver.api.common import json_response, page_response, query_limit, service
from receiver.api.views import delivery_view
from receiver.exceptions import InvalidRequestError, NotFoundError

DELIVERY_STATUSES = ("pending", "succeeded", "failed", "cancelled")


async def list_deliveries(request: Request) -> Response:
    q = request.query_params
    status = q.get("status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise InvalidRequestError(f"status must be one of {', '.join(DELIVERY_STATUSES)}")
    page = await service(request).store.list_deliveries(
        event_id=q.get("event_id"),
        subscription_id=q.get("subscription_id"),
        status=status,
        cursor=q.get("cursor"),
        limit=query_limit(request),
    )
    return page_response([delivery_view(d) for d in page.items], page.next_cursor)


async def get_delivery(request: Request) -> Response:
    found = await service(request).store.get_delivery(request.path_params["delivery_id"])
    if found is None:
        raise NotFoundError(f"no delivery {request.path_params['delivery_id']!r}")
    delivery, attempts = found
    return json_response(delivery_view(delivery, attempts))
