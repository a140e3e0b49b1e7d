"""`/v1/events`: the `transcript.completed` / `transcript.failed` events, newest first."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from receiver.api.common import json_response, page_response, query_limit, query_time, service
from receiver.api.views import event_view
from receiver.exceptions import InvalidRequestError, NotFoundError
from storage.records import EventFilter

EVENT_TYPES = ("transcript.completed", "transcript.failed")


def event_filter(request: Request) -> EventFilter:
    q = request.query_params
    event_type = q.get("type")
    if event_type is not None and event_type not in EVENT_TYPES:
        raise InvalidRequestError(f"type must be one of {', '.join(EVENT_TYPES)}")
    return EventFilter(
        type=event_type,
        provider=q.get("provider"),
        since=query_time(request, "since"),
        until=query_time(request, "until"),
        job_id=q.get("job_id"),
    )


async def list_events(request: Request) -> Response:
    page = await service(request).store.list_events(
        event_filter(request), cursor=request.query_params.get("cursor"), limit=query_limit(request)
    )
    return page_response([event_view(e) for e in page.items], page.next_cursor)


async def get_event(request: Request) -> Response:
    event = await service(request).store.get_event(request.path_params["event_id"])
    if event is None:
        raise NotFoundError(f"no event {request.path_params['event_id']!r}")
    return json_response(event_view(event))
