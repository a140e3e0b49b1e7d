"""`POST /v1/events/{id}/replay` and `POST /v1/replay`: re-deliver through the one replay engine."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from receiver.api.common import decode_body, json_response, service
from receiver.exceptions import InvalidRequestError, NotFoundError
from receiver.timeparse import parse_time
from routes import replay

MAX_IDS_IN_ANSWER = 1000


class ReplayBody(msgspec.Struct, forbid_unknown_fields=True):
    event_ids: list[str] = msgspec.field(default_factory=list)
    since: str | None = None
    until: str | None = None
    type: str | None = None
    provider: str | None = None
    subscription_id: str | None = None
    status: str = "failed"
    dry_run: bool = False


class EventReplayBody(msgspec.Struct, forbid_unknown_fields=True):
    subscription_id: str | None = None
    dry_run: bool = False


def _time(name: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise InvalidRequestError(f"{name}: {exc}") from None


async def _run(request: Request, req: replay.ReplayRequest, dry_run: bool) -> Response:
    store = service(request).store
    count, ids, pairs = 0, list[str](), list[tuple[str, str]]()
    try:
        if dry_run:
            async for batch in replay.plan(store, req):
                count += len(batch)
                pairs += batch[: max(0, MAX_IDS_IN_ANSWER - len(pairs))]
        else:
            async for delivery_ids in replay.enqueue(store, req):
                count += len(delivery_ids)
                ids += delivery_ids[: max(0, MAX_IDS_IN_ANSWER - len(ids))]
            request.app.state.workers.fanout.wake()
    except replay.ReplayError as exc:
        raise InvalidRequestError(str(exc)) from None
    answer: dict[str, object] = {"object": "replay", "dry_run": dry_run, "count": count}
    if dry_run:
        answer["deliveries"] = [{"event_id": e, "subscription_id": s} for e, s in pairs]
    else:
        answer["delivery_ids"] = ids
    answer["truncated"] = count > MAX_IDS_IN_ANSWER
    return json_response(answer, status_code=200 if dry_run else 202)


async def replay_event(request: Request) -> Response:
    body = await decode_body(request, EventReplayBody)
    event_id = request.path_params["event_id"]
    if await service(request).store.get_event(event_id) is None:  # the resource in the path: 404, not 400
        raise NotFoundError(f"no event {event_id!r}")
    req = replay.ReplayRequest(event_ids=[event_id], subscription_id=body.subscription_id, status="all")
    return await _run(request, req, body.dry_run)


async def replay_filter(request: Request) -> Response:
    body = await decode_body(request, ReplayBody)
    req = replay.ReplayRequest(
        event_ids=body.event_ids,
        since=_time("since", body.since),
        until=_time("until", body.until),
        type=body.type,
        provider=body.provider,
        subscription_id=body.subscription_id,
        status=body.status,
    )
    return await _run(request, req, body.dry_run)
